"""The people's side of trainlab: the `trainlab` command line and a Python client."""
