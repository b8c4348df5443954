# textft on a CUDA PyTorch base image whose torch satisfies transformers 5 (torch >= 2.6;
# tests/test_docker.py checks this tag against the installed transformers' own requirement).
#   docker build -t textft .
#   docker run --gpus all textft                                   # the offline demo: bbc_minilm, baked into the image
#   docker run --gpus all -v $PWD/outputs:/app/outputs -v $HOME/.cache/huggingface:/cache/huggingface \
#       textft recipe=imdb_bert                                    # any recipe; Hub recipes need network access
FROM pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 HF_HOME=/cache/huggingface TOKENIZERS_PARALLELISM=false
WORKDIR /app
COPY pyproject.toml README.md ./
COPY textft ./textft
COPY recipes ./recipes
# keep the base image's CUDA torch: a dependency asking for a newer one fails the build instead of pulling a CPU/other
# CUDA wheel of several GB over it
RUN python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > /tmp/torch.txt \
    && pip install --no-cache-dir -c /tmp/torch.txt ".[demo]" \
    && python -m textft.assets bbc minilm

# the documented entry: Accelerate spreads training over every visible GPU (see recipes/accelerate/); -q: a failure is
# textft's one-line error, not a launcher traceback after it
ENTRYPOINT ["accelerate", "launch", "-q", "textft/train.py"]
CMD ["recipe=bbc_minilm"]
