"""Run-time processing declared in the manifest: encoded images and named records in, labels out.

Each module applies one part of ``modelfn.bundle.processing``; Pillow is imported only when a
bundle declares image input, so other bundles never pay for it.
"""
