# One image for web, worker and migrations. PROFILE=funasr adds torch + funasr (build arg
# TORCH_INDEX selects the CUDA build for GPU hosts).
FROM python:3.11-slim

ARG PROFILE=offline
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX=""

RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The dependencies first, from pyproject.toml alone (no package is there yet), so a change to
# tingxie's code rebuilds only the last layers, not the models' libraries.
COPY pyproject.toml README.md ./
RUN if [ "$PROFILE" = "funasr" ]; then \
      pip install --no-cache-dir ${TORCH_INDEX:+--index-url $TORCH_INDEX} "$TORCH_SPEC" \
      && pip install --no-cache-dir ".[offline,funasr]" ; \
    else \
      pip install --no-cache-dir ".[offline]" ; \
    fi
COPY contract contract
COPY core core
COPY web web
COPY gateway gateway
COPY worker worker
COPY pipeline pipeline
COPY media media
COPY cli cli
COPY migrations migrations
RUN pip install --no-cache-dir --no-deps --force-reinstall . && rm -rf build *.egg-info

# Not root: the processes run as user 10001 (Kubernetes' runAsNonRoot), which owns the directories
# its volumes mount over (a new volume takes the image directory's owner).
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home tingxie \
 && mkdir -p /data /scratch /models \
 && chown tingxie:tingxie /data /scratch /models
USER 10001

ENV TINGXIE_DATA_DIR=/data TINGXIE_HOST=0.0.0.0 HOME=/data
VOLUME ["/data"]
EXPOSE 8000 10095
ENTRYPOINT ["tingxie"]
CMD ["up"]
