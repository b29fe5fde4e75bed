"""What the API and the workers share: settings, database, models, repositories, the Celery
app and task names, and the artifact store."""
