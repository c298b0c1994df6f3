# Stand-in for the official nginx image: the suite's nginx-light (with SSL), logs to the
# container's output, busybox-like wget for health checks.
ARG BASE
FROM ${BASE}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends nginx-light wget \
    && rm -rf /var/lib/apt/lists/* \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
    && useradd --system --no-create-home --shell /usr/sbin/nologin nginx
EXPOSE 80 443
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
