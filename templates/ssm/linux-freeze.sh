#!/usr/bin/env bash
# SmartVault's application-consistent snapshot stages for Linux (issue 32), run by Systems
# Manager before and after CreateSnapshots:
#   pre:  run the hooks in $HOOKS_DIR/pre.d (a database flush, say), then freeze each file
#         system (fsfreeze -f), and start a watchdog that thaws them all after $TIMEOUT
#         seconds whatever happens next: a file system is never left frozen.
#   post: thaw every file system the pre stage froze (also after the watchdog did), stop the
#         watchdog, then run the hooks in $HOOKS_DIR/post.d.
# A pre stage that fails thaws what it froze before it exits non-zero. Settings come from the
# environment: SMARTVAULT_TIMEOUT (seconds, default 30), SMARTVAULT_MOUNTS (mount points,
# space-separated; default every mounted ext4 or xfs file system but / and /boot),
# SMARTVAULT_HOOKS_DIR (/etc/smartvault/hooks), SMARTVAULT_STATE_DIR (/run/smartvault) and
# SMARTVAULT_FSFREEZE (fsfreeze), the last three for tests.
set -u

STAGE="${1:-}"
TIMEOUT="${SMARTVAULT_TIMEOUT:-30}"
HOOKS_DIR="${SMARTVAULT_HOOKS_DIR:-/etc/smartvault/hooks}"
STATE_DIR="${SMARTVAULT_STATE_DIR:-/run/smartvault}"
FSFREEZE="${SMARTVAULT_FSFREEZE:-fsfreeze}"
FROZEN="$STATE_DIR/frozen"
WATCHDOG="$STATE_DIR/watchdog.pid"

log() { printf 'smartvault-%s: %s\n' "$STAGE" "$*" >&2; }

# The mount points to freeze, one a line.
mounts() {
    if [ -n "${SMARTVAULT_MOUNTS:-}" ]; then
        local points
        read -r -a points <<<"$SMARTVAULT_MOUNTS"
        printf '%s\n' "${points[@]}"
        return
    fi
    while read -r _ point type _; do
        case "$type" in
            ext4 | xfs) case "$point" in / | /boot | /boot/*) ;; *) printf '%s\n' "$point" ;; esac ;;
        esac
    done </proc/self/mounts
}

# Thaws every file system in $FROZEN. One that is not frozen (the watchdog came first, or its
# freeze failed) answers EINVAL, "Invalid argument": that is fine; any other failure is not.
thaw_all() {
    local failed=0 point out
    [ -f "$FROZEN" ] || return 0
    while read -r point; do
        [ -n "$point" ] || continue
        if ! out="$("$FSFREEZE" -u "$point" 2>&1)"; then
            case "$out" in
                *"Invalid argument"*) ;;
                *) log "could not thaw $point: $out"; failed=1 ;;
            esac
        fi
    done <"$FROZEN"
    [ "$failed" = 0 ] && rm -f "$FROZEN"
    return "$failed"
}

run_hooks() {
    local dir="$HOOKS_DIR/$1.d" hook
    [ -d "$dir" ] || return 0
    for hook in "$dir"/*; do
        [ -x "$hook" ] || continue
        log "hook $hook"
        "$hook" || { log "hook $hook failed"; return 1; }
    done
}

stop_watchdog() {
    local pid
    [ -f "$WATCHDOG" ] || return 0
    pid="$(cat "$WATCHDOG")"
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -f "$WATCHDOG"
}

pre() {
    mkdir -p "$STATE_DIR" || { log "cannot write $STATE_DIR"; return 1; }
    # A pre stage left over from an earlier run: thaw first, never freeze twice.
    stop_watchdog
    thaw_all || return 1
    run_hooks pre || return 1
    : >"$FROZEN"
    # The watchdog starts before the first freeze, in its own session (the SSM agent ends the
    # command's process group when the stage returns), and thaws everything after $TIMEOUT.
    # shellcheck disable=SC2016 # $0 and $1 are the inner shell's: this script and the timeout.
    setsid bash -c 'sleep "$1"; exec "$0" watchdog' "$0" "$TIMEOUT" </dev/null >/dev/null 2>&1 &
    echo "$!" >"$WATCHDOG"
    local point
    while read -r point; do
        [ -n "$point" ] || continue
        echo "$point" >>"$FROZEN"
        if ! "$FSFREEZE" -f "$point"; then
            log "could not freeze $point; thawing what was frozen"
            thaw_all
            stop_watchdog
            return 1
        fi
        log "froze $point"
    done < <(mounts)
}

post() {
    local status=0
    stop_watchdog
    thaw_all || status=1
    run_hooks post || status=1
    return "$status"
}

case "$STAGE" in
    pre) pre ;;
    post) post ;;
    watchdog) log "timeout: thawing"; thaw_all; rm -f "$WATCHDOG" ;;
    *) printf 'usage: %s pre|post\n' "$0" >&2; exit 2 ;;
esac
