"""Deployment: render, validate and run the IaC per target, and build the slim Lambda zip.

``lambda_package`` builds the zip (``build_lambda_zip``), ``lambda_files`` holds its file-level
steps and ``prune`` the one list of what the zip leaves out. Build-time code: no handler imports
anything here, and none of it ships in the Lambda zip.
"""
