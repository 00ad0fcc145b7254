#!/bin/sh
# One-shot topic initialiser (the kafka-init service of docker-compose.yml), run with the
# kafka-topics.sh and kafka-configs.sh of the apache/kafka image.
#
# Creates transitwatch's topics with the partition count, replication and retention of the
# environment, and re-applies the retention of topics that exist. It never changes the
# partition count of an existing topic: the worker's state is partitioned like the internal
# goods topic, so a mismatch there stops the stack, before any change, with a pointer to
# docs/operations.md; for the other topics it prints a warning. Safe to run at every start.
#
# Environment (docker-compose.yml passes them, with the defaults of streams/settings.py):
#   DEPLOY_BROKER                 kafka://host:port[;kafka://host:port], as TRANSITWATCH_BROKER
#   TRANSITWATCH_PARTITIONS, TRANSITWATCH_REPLICATION
#   TRANSITWATCH_DECLARATIONS_TOPIC, TRANSITWATCH_MONTHLY_TOPIC, TRANSITWATCH_GOODS_TOPIC,
#   TRANSITWATCH_ALERTS_TOPIC, TRANSITWATCH_DEAD_LETTER_TOPIC, TRANSITWATCH_UNDELIVERED_TOPIC
#   TOPIC_RETENTION_INPUTS_MS, TOPIC_RETENTION_INTERNAL_MS, TOPIC_RETENTION_ALERTS_MS,
#   TOPIC_RETENTION_DEAD_LETTER_MS, TOPIC_RETENTION_UNDELIVERED_MS
#                                 milliseconds, or -1 to keep messages forever
#   KAFKA_BIN_DIR                 where kafka-topics.sh lives (default /opt/kafka/bin)
#   KAFKA_INIT_ATTEMPTS           how many times to try the broker, 2 s apart (default 30)
set -eu

fail() {
    echo "kafka-init: $*" >&2
    exit 1
}

need() {
    eval "value=\${$1-}"
    [ -n "$value" ] || fail "$1 is not set"
    printf '%s' "$value"
}

# A whole number >= 1, or -1 when -1 is allowed ($2 = allow-forever).
number() {
    value=$(need "$1")
    case $value in
        -1) [ "${2-}" = allow-forever ] || fail "$1=-1: expected a whole number >= 1" ;;
        *[!0-9]* | 0*) fail "$1=$value: expected a whole number >= 1${2:+, or -1 for ever}" ;;
    esac
    printf '%s' "$value"
}

# Read every setting first: a missing or bad one stops the script before any change.
broker=$(need DEPLOY_BROKER)
# kafka://a:9092;kafka://b:9092 -> a:9092,b:9092
bootstrap=$(printf '%s' "$broker" | sed -e 's#kafka://##g' -e 's#[[:space:]]##g' -e 's#;#,#g')
partitions=$(number TRANSITWATCH_PARTITIONS)
replication=$(number TRANSITWATCH_REPLICATION)
declarations=$(need TRANSITWATCH_DECLARATIONS_TOPIC)
monthly=$(need TRANSITWATCH_MONTHLY_TOPIC)
goods=$(need TRANSITWATCH_GOODS_TOPIC)
alerts=$(need TRANSITWATCH_ALERTS_TOPIC)
dead_letter=$(need TRANSITWATCH_DEAD_LETTER_TOPIC)
undelivered=$(need TRANSITWATCH_UNDELIVERED_TOPIC)
keep_inputs=$(number TOPIC_RETENTION_INPUTS_MS allow-forever)
keep_internal=$(number TOPIC_RETENTION_INTERNAL_MS allow-forever)
keep_alerts=$(number TOPIC_RETENTION_ALERTS_MS allow-forever)
keep_dead_letter=$(number TOPIC_RETENTION_DEAD_LETTER_MS allow-forever)
keep_undelivered=$(number TOPIC_RETENTION_UNDELIVERED_MS allow-forever)
KAFKA_INIT_ATTEMPTS=${KAFKA_INIT_ATTEMPTS:-30}
attempts=$(number KAFKA_INIT_ATTEMPTS)
bin=${KAFKA_BIN_DIR:-/opt/kafka/bin}

# Give up on an unreachable broker after seconds, not the admin client's default minute.
client=$(mktemp)
trap 'rm -f "$client"' EXIT
printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n' > "$client"

topics() {
    "$bin/kafka-topics.sh" --bootstrap-server "$bootstrap" --command-config "$client" "$@"
}

# One description of every topic, which also tells that the broker answers (each
# kafka-topics.sh call is a JVM start: as few as possible).
tried=0
until described=$(topics --describe --exclude-internal 2>/dev/null); do
    tried=$((tried + 1))
    [ "$tried" -lt "$attempts" ] || fail "no Kafka broker answers at $bootstrap after $tried attempts"
    echo "kafka-init: waiting for Kafka at $bootstrap ($tried)" >&2
    sleep 2
done

# partitions_of NAME: the partition count of an existing topic, empty if there is none.
partitions_of() {
    printf '%s\n' "$described" | awk -v t="$1" '
        $1 == "Topic:" && $2 == t && /PartitionCount:/ {
            for (i = 1; i < NF; i++) if ($i == "PartitionCount:") { print $(i + 1); exit }
        }'
}

# The worker's state is partitioned like the goods topic: refuse before changing anything.
count=$(partitions_of "$goods")
if [ -n "$count" ] && [ "$count" != "$partitions" ]; then
    fail "$goods has $count partitions but TRANSITWATCH_PARTITIONS=$partitions; the worker's state is" \
        "partitioned like this topic: follow docs/operations.md#changing-the-partition-count"
fi

# ensure NAME RETENTION_MS
ensure() {
    name=$1
    retention=$2
    count=$(partitions_of "$name")
    if [ -z "$count" ]; then
        topics --create --if-not-exists --topic "$name" --partitions "$partitions" \
            --replication-factor "$replication" --config "retention.ms=$retention" > /dev/null
        echo "kafka-init: created $name ($partitions partitions, replication $replication, retention.ms=$retention)"
        return
    fi
    if [ "$count" != "$partitions" ]; then
        echo "kafka-init: warning: $name has $count partitions, TRANSITWATCH_PARTITIONS=$partitions;" \
            "left as it is (docs/operations.md#changing-the-partition-count)" >&2
    fi
    "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config "$client" --alter \
        --entity-type topics --entity-name "$name" --add-config "retention.ms=$retention" > /dev/null
    echo "kafka-init: $name exists ($count partitions), retention.ms=$retention"
}

ensure "$declarations" "$keep_inputs"
ensure "$monthly" "$keep_inputs"
ensure "$goods" "$keep_internal"
ensure "$alerts" "$keep_alerts"
ensure "$dead_letter" "$keep_dead_letter"
ensure "$undelivered" "$keep_undelivered"
echo "kafka-init: done"
