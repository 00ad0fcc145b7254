#!/bin/sh
# Start Alertmanager with deploy/alertmanager/alertmanager.yml rendered from the environment.
#
# Alertmanager expands no environment variables itself. This script, run by the busybox shell
# of the prom/alertmanager image:
#   1. checks every ALERTMANAGER_* setting (a bad value stops the container with a message);
#   2. writes the secrets (Slack webhook URL, SMTP password) to files under
#      ALERTMANAGER_SECRETS_DIR (a tmpfs in docker-compose.yml), mode 0600, and removes them
#      from the environment of the Alertmanager process;
#   3. renders the template: each ${NAME} becomes the value of NAME, and the "# BEGIN slack" ..
#      "# END slack" block is dropped when no webhook is configured;
#   4. execs Alertmanager (ALERTMANAGER_BIN, default /bin/alertmanager) with the rendered file
#      and the container's command as further flags.
#
# Each secret comes from NAME or from the file named by NAME_FILE (a Docker/Compose secret).
set -eu

template=${ALERTMANAGER_TEMPLATE:-/etc/transitwatch/alertmanager/alertmanager.yml}
secrets=${ALERTMANAGER_SECRETS_DIR:=/tmp/alertmanager-secrets}
config=${ALERTMANAGER_CONFIG_OUT:-$secrets/alertmanager.yml}
export ALERTMANAGER_SECRETS_DIR

fail() {
    echo "alertmanager entrypoint: $*" >&2
    exit 64
}

# check NAME REGEX DESCRIPTION: NAME must be set (possibly empty) and match REGEX.
check() {
    eval "isset=\${$1+x} value=\${$1-}"
    [ -n "$isset" ] || fail "$1 is not set ($3)"
    printf '%s\n' "$value" | grep -Eq "$2" || fail "$1='$value' is not valid: $3"
    # grep matches line by line: a value with a newline must not slip through.
    case $value in *"
"*) fail "$1 must be one line" ;; esac
}

check ALERTMANAGER_SMTP_SMARTHOST '^[A-Za-z0-9.-]+:[0-9]+$' 'host:port of the SMTP server'
check ALERTMANAGER_EMAIL_FROM "^[^'{}<>]+@[^'{}<>]+\$" 'sender address'
check ALERTMANAGER_EMAIL_TO "^[^'{}<>]+@[^'{}<>]+\$" 'recipient address(es), comma-separated'
check ALERTMANAGER_SMTP_USERNAME "^[^'{}]*\$" 'SMTP user, empty for none'
check ALERTMANAGER_SMTP_REQUIRE_TLS '^(true|false)$' 'true or false'
check ALERTMANAGER_SLACK_CHANNEL '^([#@]?[A-Za-z0-9._-]+)?$' 'e.g. #transitwatch-ops, empty for the webhook default'
check ALERTMANAGER_RUNBOOK_BASE_URL '^(https?://[^[:space:]'"'"'{}<>|]*)?$' 'URL prefixed to docs/operations.md#..., empty for none'
check ALERTMANAGER_SECRETS_DIR '^/[A-Za-z0-9/._-]+$' 'absolute path'

# secret NAME: the value of NAME, or the content of the file named by NAME_FILE.
secret() {
    eval "direct=\${$1-} file=\${$1_FILE-}"
    if [ -n "$direct" ] && [ -n "$file" ]; then
        fail "set $1 or $1_FILE, not both"
    fi
    if [ -n "$file" ]; then
        [ -r "$file" ] || fail "$1_FILE=$file cannot be read"
        # $(...) drops the trailing newlines that editors add.
        direct=$(cat "$file")
    fi
    printf '%s' "$direct"
}

umask 077
mkdir -p "$secrets"
slack_url=$(secret ALERTMANAGER_SLACK_WEBHOOK_URL)
smtp_password=$(secret ALERTMANAGER_SMTP_PASSWORD)
unset ALERTMANAGER_SLACK_WEBHOOK_URL ALERTMANAGER_SLACK_WEBHOOK_URL_FILE
unset ALERTMANAGER_SMTP_PASSWORD ALERTMANAGER_SMTP_PASSWORD_FILE

if [ -n "$slack_url" ]; then
    case $slack_url in
        https://* | http://*) ;;
        *) fail "ALERTMANAGER_SLACK_WEBHOOK_URL (or its _FILE) must start with https:// (or http:// for a relay inside your network; the value is not shown)" ;;
    esac
    slack=1
else
    slack=0
    echo "alertmanager entrypoint: no Slack webhook configured; notifications go by email only" >&2
fi
printf '%s' "$slack_url" > "$secrets/slack_webhook_url"
printf '%s' "$smtp_password" > "$secrets/smtp_password"

awk -v slack="$slack" '
    /^ *# BEGIN slack *$/ { skip = !slack; next }
    /^ *# END slack *$/ { skip = 0; next }
    skip { next }
    {
        out = ""
        line = $0
        while (match(line, /\$\{[A-Z][A-Z0-9_]*\}/)) {
            name = substr(line, RSTART + 2, RLENGTH - 3)
            if (!(name ~ /^ALERTMANAGER_/) || !(name in ENVIRON)) {
                printf "alertmanager entrypoint: %s (line %d of the template) is not a known setting\n", name, NR > "/dev/stderr"
                bad = 1
            }
            out = out substr(line, 1, RSTART - 1) ENVIRON[name]
            line = substr(line, RSTART + RLENGTH)
        }
        print out line
    }
    END { exit bad }
' "$template" > "$config" || fail "cannot render $template"

echo "alertmanager entrypoint: rendered $config (slack: $([ "$slack" = 1 ] && echo on || echo off))" >&2
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$config" "$@"
