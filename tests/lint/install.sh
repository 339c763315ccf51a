#!/bin/bash
# make install / make uninstall into a DESTDIR: every file where
# INTERFACE.md and hier(7) say, a program built against the installed
# header and static libwake through the installed libwake.pc works, the
# .pc names the PREFIX of the install (not of the build), and uninstall
# leaves nothing but empty directories. B= passes a build directory on.
# Exit 0 pass, 1 fail.
cd "$(dirname "$0")/../.." || exit 1
set -u
fail() { echo "FAIL: $*"; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
make_in() { # DESTDIR PREFIX TARGET
	make -s ${B:+B="$B"} DESTDIR="$1" PREFIX="$2" "$3" >"$tmp/make.log" 2>&1 ||
		fail "make $3 DESTDIR=$1 PREFIX=$2: $(tail -n 20 "$tmp/make.log")"
}

root=$tmp/root
make_in "$root" /usr/local install
p=$root/usr/local
want=(sbin/odrsd bin/odrsctl lib/libwake.a lib/libwake.so lib/libwake.so.0
	lib/pkgconfig/libwake.pc include/wake.h)
for h in libwake/wake/*.h; do want+=("include/wake/${h##*/}"); done
for m in man/*.[1-8]; do want+=("share/man/man${m##*.}/${m##*/}"); done
for f in "${want[@]}"; do
	[ -e "$p/$f" ] || fail "not installed: \$PREFIX/$f"
done
for s in 3 5 8; do
	ls "$p/share/man/man$s/"*."$s" >/dev/null 2>&1 || fail "no page in share/man/man$s"
done
[ -x "$p/sbin/odrsd" ] && [ -x "$p/bin/odrsctl" ] || fail "programs not executable"
"$p/sbin/odrsd" -V | grep -q '^odrsd ' || fail "installed odrsd -V: $("$p/sbin/odrsd" -V 2>&1)"
"$p/bin/odrsctl" -V | grep -q '^odrsctl ' || fail "installed odrsctl -V"
[ "$(readlink "$p/lib/libwake.so")" = libwake.so.0 ] || fail "libwake.so is not a link to libwake.so.0"
objdump -p "$p/lib/libwake.so.0" | grep -q 'SONAME *libwake.so.0' || fail "libwake.so.0 has no SONAME libwake.so.0"
# Nothing installed outside PREFIX.
stray=$(cd "$root" && find . \( -type f -o -type l \) ! -path './usr/local/*')
[ -z "$stray" ] || fail "installed outside PREFIX: $stray"
grep -qx 'prefix=/usr/local' "$p/lib/pkgconfig/libwake.pc" || fail "libwake.pc: $(cat "$p/lib/pkgconfig/libwake.pc")"

# A user of the library, through pkg-config only; the sysroot maps /usr/local into DESTDIR.
cat >"$tmp/user.c" <<'EOF'
/* The duration parser (the brief's check), plus one caller each of inih and libnet: Libs.private. */
#include <inttypes.h>
#include <stdio.h>
#include <wake.h>

int main(int argc, char **argv)
{
	static const uint8_t mac[WK_ETH_ALEN] = { 0x52, 0x54, 0, 0x12, 0, 0x10 };
	uint8_t frame[WK_FRAME_MAX];
	struct wk_config *cfg;
	uint64_t ms;
	int garp;

	if (argc != 2 || wk_parse_duration("2m", &ms) < 0 || wk_config_load(argv[1], NULL, NULL, &cfg) < 0)
		return 1;
	garp = wk_garp_build(mac, 0x0a0012c6, NULL, frame, sizeof(frame));
	printf("%" PRIu64 " %s %zu %s\n", ms, wk_parse_duration("2 fortnights", &ms) < 0 ? "refused" : "taken",
	       cfg->nvms, garp >= 42 ? "garp" : "no-garp");
	wk_config_free(cfg);
	return 0;
}
EOF
export PKG_CONFIG_PATH=$p/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root
cflags=$(pkg-config --cflags libwake) && libs=$(pkg-config --static --libs libwake) ||
	fail "pkg-config libwake: $(pkg-config --static --libs libwake 2>&1)"
echo "libwake.pc: cflags '$cflags', static libs '$libs'"
grep -q -- "-I$p/include" <<<"$cflags" || fail "cflags do not point at the installed headers"
# -static for libwake only: the system libraries come as their shared objects.
${CC:-cc} -std=gnu11 -Wall -Werror $cflags -o "$tmp/user" "$tmp/user.c" \
	${libs/-lwake/-Wl,-Bstatic -lwake -Wl,-Bdynamic} 2>"$tmp/cc.log" ||
	fail "building against the installed libwake: $(cat "$tmp/cc.log")"
! objdump -p "$tmp/user" | grep -q 'NEEDED *libwake' || fail "linked libwake.so, not libwake.a"
printf '[vm web1]\nip = 198.18.0.10\n' >"$tmp/user.conf"
out=$("$tmp/user" "$tmp/user.conf") || fail "the program failed: $out"
[ "$out" = "120000 refused 1 garp" ] || fail "the program printed '$out', want '120000 refused 1 garp'"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

make_in "$root" /usr/local uninstall
left=$(cd "$root" && find . \( -type f -o -type l \))
[ -z "$left" ] || fail "left after uninstall: $left"

# The .pc describes where it is installed, whatever PREFIX the build saw.
make_in "$tmp/opt" /opt/odrs install
grep -qx 'prefix=/opt/odrs' "$tmp/opt/opt/odrs/lib/pkgconfig/libwake.pc" ||
	fail "PREFIX=/opt/odrs: libwake.pc says $(grep '^prefix=' "$tmp/opt/opt/odrs/lib/pkgconfig/libwake.pc")"
[ -x "$tmp/opt/opt/odrs/sbin/odrsd" ] || fail "PREFIX=/opt/odrs: no sbin/odrsd"
make_in "$tmp/opt" /opt/odrs uninstall
left=$(cd "$tmp/opt" && find . \( -type f -o -type l \))
[ -z "$left" ] || fail "PREFIX=/opt/odrs: left after uninstall: $left"
echo "ok"
