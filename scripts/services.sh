#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis (and RabbitMQ, when installed) answer on loopback.
# Starts an installed, stopped server; says what to install when one is missing.
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() { for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done; return 1; }
fail=0
if ! up 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_up 5432 || { echo "services: PostgreSQL is not running on 127.0.0.1:5432 and could not be started; install it (apt-get install postgresql)" >&2; fail=1; }
fi
if ! up 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  wait_up 6379 || { echo "services: Redis is not running on 127.0.0.1:6379 and could not be started; install it (apt-get install redis-server)" >&2; fail=1; }
fi
if ! up 5672 && command -v rabbitmq-server >/dev/null 2>&1; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_up 5672 || echo "services: RabbitMQ did not come up; its tests will say so" >&2
fi
exit $fail
