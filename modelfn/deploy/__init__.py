"""Deployment: the slim Lambda zip (``lambda_package``) and the rules that keep it slim (``prune``).

Build-time code: nothing here is imported by a handler, and none of it ships in the Lambda zip.
"""
