#!/usr/bin/env bash
# deps-mingw.sh PREFIX - build cJSON, SQLite and cmocka for x86_64-w64-mingw32 into PREFIX.
#
# Sources are Debian's own source packages (bookworm main), fetched with a private apt list
# that lives next to PREFIX: the system's apt configuration is never touched. The mirror is
# taken from the system's own sources. A finished PREFIX carries a stamp and is reused as is,
# so a second run fetches and builds nothing.
#
# SQLite compile options, and why:
#   SQLITE_THREADSAFE=1           serialized mode: the history thread writes while other
#                                 threads (pipe, apcctl in-process reads) may open connections
#   (WAL left available)          readers (apcctl, the sqlite3 shell) query while we write
#   SQLITE_DQS=0                  "double-quoted strings" are identifiers only: a typo in SQL
#                                 becomes an error instead of a silent string literal
#   SQLITE_OMIT_LOAD_EXTENSION    a service running as SYSTEM never loads code from a DB path
#   SQLITE_DEFAULT_FOREIGN_KEYS=1 constraints we declare are enforced on every connection
set -euo pipefail

prefix=${1:?usage: deps-mingw.sh PREFIX}
stamp_value="cjson sqlite3 cmocka bookworm v1"
if [[ -f "$prefix/.stamp" && "$(cat "$prefix/.stamp")" == "$stamp_value" ]]; then
  echo "deps-mingw: using cached $prefix"
  exit 0
fi

triplet=x86_64-w64-mingw32
# Run from CMake's configure step, this script inherits CC (the mingw compiler) and maybe
# flags: SQLite's host-side ./configure must use the host compiler, the cross builds name
# their compiler through the toolchain file.
unset CC CFLAGS CPPFLAGS LDFLAGS CXX CXXFLAGS
here=$(cd "$(dirname "$0")" && pwd)
work="$prefix.work"
rm -rf "$work" "$prefix"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src" "$prefix"

# The Debian mirror the system already uses (deb822 or one-line format).
mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
         grep -v security | head -n1 || true)
if [[ -z "$mirror" ]]; then
  mirror=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security |
           head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
echo "deb-src $mirror bookworm main" > "$work/apt/sources.list"

apt_private=(-o "Dir::Etc::SourceList=$work/apt/sources.list"
             -o "Dir::Etc::SourceParts=/nonexistent"
             -o "Dir::State::Lists=$work/apt/lists"
             -o "Dir::Cache=$work/apt/cache"
             -o "APT::Sandbox::User=root")
echo "deps-mingw: fetching Debian sources of cjson, sqlite3, cmocka from $mirror"
apt-get -q "${apt_private[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; exit 1; }
# apt-get source unpacks each package with dpkg-source, Debian's patches applied.
(cd "$work/src" && apt-get -q "${apt_private[@]}" source cjson sqlite3 cmocka >>"$work/apt.log" 2>&1) ||
  { cat "$work/apt.log"; exit 1; }

jobs=$(nproc)
cmake_cross=(-G Ninja -DCMAKE_TOOLCHAIN_FILE="$here/toolchain-mingw64.cmake"
             -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix")

echo "deps-mingw: building cJSON"
cjson_src=$(find "$work/src" -maxdepth 1 -type d -name 'cjson-*' | head -n1)
cmake -S "$cjson_src" -B "$work/build-cjson" "${cmake_cross[@]}" -DBUILD_SHARED_LIBS=OFF \
  -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF -DENABLE_TARGET_EXPORT=ON \
  -DENABLE_CUSTOM_COMPILER_FLAGS=OFF >"$work/cjson.log" 2>&1 || { cat "$work/cjson.log"; exit 1; }
cmake --build "$work/build-cjson" --target install >>"$work/cjson.log" 2>&1 ||
  { cat "$work/cjson.log"; exit 1; }

echo "deps-mingw: building cmocka"
cmocka_src=$(find "$work/src" -maxdepth 1 -type d -name 'cmocka-*' | head -n1)
cmake -S "$cmocka_src" -B "$work/build-cmocka" "${cmake_cross[@]}" -DWITH_STATIC_LIB=ON \
  -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF >"$work/cmocka.log" 2>&1 ||
  { cat "$work/cmocka.log"; exit 1; }
cmake --build "$work/build-cmocka" --target install >>"$work/cmocka.log" 2>&1 ||
  { cat "$work/cmocka.log"; exit 1; }

echo "deps-mingw: building the SQLite amalgamation and library (about a minute)"
sqlite_src=$(find "$work/src" -maxdepth 1 -type d -name 'sqlite3-*' | head -n1)
(cd "$sqlite_src" && ./configure >"$work/sqlite.log" 2>&1 && make -j"$jobs" sqlite3.c >>"$work/sqlite.log" 2>&1) ||
  { cat "$work/sqlite.log"; exit 1; }
mkdir -p "$prefix/include" "$prefix/lib"
"$triplet-gcc" -O2 -c "$sqlite_src/sqlite3.c" -o "$work/sqlite3.o" \
  -DSQLITE_THREADSAFE=1 -DSQLITE_DQS=0 -DSQLITE_OMIT_LOAD_EXTENSION \
  -DSQLITE_DEFAULT_FOREIGN_KEYS=1 >>"$work/sqlite.log" 2>&1 ||
  { cat "$work/sqlite.log"; exit 1; }
"$triplet-gcc-ar" rcs "$prefix/lib/libsqlite3.a" "$work/sqlite3.o"
cp "$sqlite_src/sqlite3.h" "$sqlite_src/sqlite3ext.h" "$prefix/include/"

rm -rf "$work/build-cjson" "$work/build-cmocka" "$work/src"
echo "$stamp_value" > "$prefix/.stamp"
echo "deps-mingw: ready in $prefix"
