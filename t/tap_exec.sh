#!/usr/bin/env bash
# prove's --exec (t/run-tests.sh): *.sh tests print TAP themselves; spec files
# run under busted with LuaJIT (FFI). Each is bounded in time.
case "$1" in
  *.sh) exec timeout -k 10 900 "$1" ;;
  *)    exec timeout -k 10 900 luajit /usr/bin/busted -o TAP --lpath="$LPATH" --cpath="$CPATH" "$1" ;;
esac
