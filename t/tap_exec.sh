#!/usr/bin/env bash
# prove's --exec (t/run-tests.sh): *.sh tests print TAP themselves; spec files
# run under busted with LuaJIT (FFI). Each is bounded in time. What a spec file
# leaves in its NGX_IPC_T_TMP (the unit specs' shim directories) goes with it.
case "$1" in
  *.sh) exec timeout -k 10 900 "$1" ;;
esac
NGX_IPC_T_TMP=$(mktemp -d /tmp/ngx-ipc-spec.XXXXXX)
export NGX_IPC_T_TMP
timeout -k 10 900 luajit /usr/bin/busted -o TAP --lpath="$LPATH" --cpath="$CPATH" "$1"
rc=$?
rm -rf "$NGX_IPC_T_TMP"
exit $rc
