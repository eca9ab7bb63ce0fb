#!/bin/sh
# Test worker for the `command` executor: does what the input's "mode" says.
# Input is edged's compact JSON: {"mode":"...","pidfile":"...",...}
input=$(cat)
str() { printf '%s' "$input" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
mode=$(str mode)
pidfile=$(str pidfile)
case "$mode" in
echo)
    echo "stderr line one" >&2
    echo "stderr line two" >&2
    printf '{"input":%s,"task_id":"%s","attempt":%s,"workflow_id":"%s","name":"%s","ref":"%s","type":"%s","home":"%s","secret":"%s","extra":"%s"}\n' \
        "$input" "$EDGED_TASK_ID" "$EDGED_ATTEMPT" "$EDGED_WORKFLOW_ID" "$EDGED_TASK_NAME" \
        "$EDGED_TASK_REF" "$EDGED_TASK_TYPE" "${HOME:-}" "${EDGED_TEST_SECRET:-}" "${EXTRA:-}"
    ;;
exit)
    code=$(printf '%s' "$input" | sed -n 's/.*"code":\([0-9]*\).*/\1/p')
    echo "failing with $code" >&2
    echo '{"partial":true}'
    exit "$code"
    ;;
text) echo "hello, not json" ;;
list) echo '[1,2,3]' ;;
nan) echo '{"x":NaN}' ;;
empty) ;;
big) while :; do echo "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; done ;;
spam)
    i=0
    while [ $i -lt 500 ]; do echo "noise $i" >&2; i=$((i + 1)); done
    head -c 10000 /dev/zero | tr '\0' 'y' >&2
    echo >&2
    echo "after the long line" >&2
    echo '{"ok":true}'
    ;;
hang)
    # a grandchild in the same process group, then wait forever
    sleep 300 &
    echo "$!" > "$pidfile"
    echo "started grandchild $!" >&2
    sleep 300
    ;;
stubborn)
    trap '' TERM
    sleep 300 &
    echo "$!" > "$pidfile"
    while :; do sleep 1; done
    ;;
leave)
    sleep 300 &
    echo "$!" > "$pidfile"
    echo '{"left":"a child"}'
    ;;
signal) kill -9 $$ ;;
nap) sleep 0.3; echo '{"napped":true}' ;;
*) echo "unknown mode '$mode'" >&2; exit 2 ;;
esac
