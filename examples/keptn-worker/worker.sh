#!/bin/sh
# A Keptn task worker written with nothing but POSIX sh, sed, df and mosquitto_sub/mosquitto_pub.
#
# It serves the Keptn task "diskcheck": for every sh.keptn.event.diskcheck.triggered CloudEvent
# on keptn/diskcheck/triggered it answers .started, then .finished with the free space of
# data.diskcheck.path (default /): result "pass" when at least MIN_FREE_KB are free, else
# "warning". edged (binding `diskcheck: {keptn: {}}`) turns that into the task's result.
#
# Re-delivery: edged publishes the same triggered event again (same id) after a restart. The
# worker keeps its answers in $STATE_DIR/<id>.* and publishes them again instead of redoing
# the work; their CloudEvents ids are derived from the triggered id, so edged drops the
# duplicates.
#
# The JSON is read with sed: edged writes compact JSON with a fixed attribute order, and ids
# and contexts never contain quotes. A real worker in another language would use a JSON parser.
set -eu

BROKER_HOST=${BROKER_HOST:-127.0.0.1}
BROKER_PORT=${BROKER_PORT:-1883}
TASK=${TASK:-diskcheck}
PREFIX=${TOPIC_PREFIX:-keptn}
NAME=${WORKER_NAME:-sh-$(hostname)}
STATE_DIR=${STATE_DIR:-./keptn-worker-state}
MIN_FREE_KB=${MIN_FREE_KB:-1024}
mkdir -p "$STATE_DIR"

publish() { # kind payload
    mosquitto_pub -h "$BROKER_HOST" -p "$BROKER_PORT" -V mqttv5 -q 1 \
        -D publish content-type application/cloudevents+json \
        -t "$PREFIX/$TASK/$1" -m "$2"
}

field() { # name json -> the string value of the last "name":"..."
    printf '%s\n' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}

head_field() { # n json -> the n-th attribute's value (1 id, 2 source, 3 type): edged's fixed order
    printf '%s\n' "$2" |
        sed -n 's/^{"specversion":"1.0","id":"\([^"]*\)","source":"\([^"]*\)","type":"\([^"]*\)".*/\'"$1"'/p'
}

answer() { # kind id context data-json -> a CloudEvent answering the triggered event
    printf '{"specversion":"1.0","id":"%s-%s-%s","source":"keptn-worker/%s","type":"sh.keptn.event.%s.%s","datacontenttype":"application/json","shkeptncontext":"%s","shkeptnspecversion":"0.2.4","triggeredid":"%s","data":%s}' \
        "$2" "$1" "$NAME" "$NAME" "$TASK" "$1" "$3" "$2" "$4"
}

echo "keptn worker $NAME serving $TASK on $BROKER_HOST:$BROKER_PORT" >&2
# -c with a stable client id: a persistent session, so triggered events published while the
# worker is down are delivered when it comes back.
mosquitto_sub -h "$BROKER_HOST" -p "$BROKER_PORT" -V mqttv5 -q 1 -c \
    -i "keptn-worker-$TASK-$NAME" -t "$PREFIX/$TASK/triggered" -F '%p' |
while IFS= read -r event; do
    id=$(head_field 1 "$event")
    type=$(head_field 3 "$event")
    context=$(field shkeptncontext "$event")
    if [ -z "$id" ] || [ "$type" != "sh.keptn.event.$TASK.triggered" ]; then
        echo "ignored a message that is not a $TASK.triggered event" >&2
        continue
    fi
    case "$id" in *[!A-Za-z0-9-]*) echo "ignored an event with a strange id" >&2; continue;; esac
    if [ -f "$STATE_DIR/$id.finished" ]; then
        echo "replaying answers to $id" >&2
        publish started "$(cat "$STATE_DIR/$id.started")"
        publish finished "$(cat "$STATE_DIR/$id.finished")"
        continue
    fi
    started=$(answer started "$id" "$context" '{"status":"succeeded"}')
    printf '%s' "$started" > "$STATE_DIR/$id.started"
    publish started "$started"

    path=$(field path "$event")
    case "$path" in /*) ;; *) path=/;; esac
    free_kb=$(df -Pk "$path" 2>/dev/null | sed -n '2s/^[^ ]* *[0-9]* *[0-9]* *\([0-9]*\).*/\1/p')
    if [ -z "$free_kb" ]; then
        data='{"result":"fail","status":"errored","message":"df failed"}'
    elif [ "$free_kb" -ge "$MIN_FREE_KB" ]; then
        data=$(printf '{"result":"pass","status":"succeeded","message":"%s KB free","diskcheck":{"free_kb":%s}}' "$free_kb" "$free_kb")
    else
        data=$(printf '{"result":"warning","status":"succeeded","message":"only %s KB free","diskcheck":{"free_kb":%s}}' "$free_kb" "$free_kb")
    fi
    finished=$(answer finished "$id" "$context" "$data")
    printf '%s' "$finished" > "$STATE_DIR/$id.finished.tmp"
    mv "$STATE_DIR/$id.finished.tmp" "$STATE_DIR/$id.finished"
    publish finished "$finished"
    echo "answered $id: $(field message "$finished")" >&2
done
