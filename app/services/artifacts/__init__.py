"""/v1 artifacts, one module per job: uploads.py (direct uploads and what
presigned ones share), presigned.py (reserve, receive, complete), reads.py (by
id, signed downloads one at a time or in a batch, listing), lifecycle.py (delete, TTL)."""
