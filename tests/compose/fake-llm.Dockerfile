# tests/compose/fake-llm.Dockerfile - the fake LLM provider (tests/fakes) as
# an image, for the compose test's override file (docker-compose.test.yml).
# Built from the repository root, on the same BASE as deploy/Dockerfile.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
LABEL vapora-c=fake-llm
RUN set -eux; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 >/dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
COPY tests/fakes/fake_llm.py /usr/local/lib/fake_llm.py
USER nobody
EXPOSE 9000
# --ttl 0: it lives as long as its container; stdin is not a pipe here.
ENTRYPOINT ["python3", "/usr/local/lib/fake_llm.py", "--host", "0.0.0.0", "--port", "9000", "--ttl", "0"]
