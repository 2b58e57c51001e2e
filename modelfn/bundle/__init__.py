"""The bundle: one runtime artifact, a manifest and a signature, stored as plain files."""
