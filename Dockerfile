# trainlab image: the API and the workers run from the same image with different commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# torch first (its own layer: the largest and the least often changed). The default pulls the
# CUDA build for GPU workers; pass --build-arg TORCH=torch==2.13.0+cpu style specs for CPU hosts.
ARG TORCH=torch==2.13.0
RUN pip install "${TORCH}"

# No apt packages: soundfile's and Pillow's wheels bundle libsndfile, libjpeg and libpng (folder data sets).
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY core ./core
COPY workers ./workers
COPY ml ./ml
COPY trainlab ./trainlab
COPY migrations ./migrations
RUN pip install -e '.[monitoring]'

ENV TRAINLAB_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000
CMD ["trainlab", "serve", "--host", "0.0.0.0", "--port", "8000"]
