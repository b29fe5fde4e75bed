"""trainlab's machine-learning library: spec -> data -> preprocessing -> model -> training -> result.

It knows nothing of HTTP, SQL, Celery or environment variables and can be used alone.
Importing `ml` or `ml.spec` does not import torch.
"""
