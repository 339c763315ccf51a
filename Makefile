# odrs: the On-Demand Resume System.
# Sources are picked up by pattern, so adding a codec, a test or a fuzzer is
# adding a file: libwake/*.c, odrsd/*.c, tools/odrsctl/*.c,
# tests/unit/test_*.c, tests/fuzz/fuzz_*.c, tests/lab/test_*.sh.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
# Where make install puts libwake.a, libwake.so and pkgconfig/libwake.pc.
LIBDIR    ?= $(PREFIX)/lib
DESTDIR   ?=
CLANG     ?= clang
B         := build
FUZZ_SECONDS ?= 60

PKGS      := libpcap libnet libvirt libvirt-qemu libxml-2.0 jansson inih libsystemd libcap-ng libcurl libmicrohttpd zlib
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS    ?= -O2 -g
CPPFLAGS  += -D_GNU_SOURCE -D_DEFAULT_SOURCE -Ilibwake -DODRS_VERSION='"$(VERSION)"'
ALL_CFLAGS = -std=gnu11 $(WARN) -fPIC $(CFLAGS)
# libnet-config is the only way libnet 1.1 describes itself; its -D_BSD_SOURCE
# makes glibc warn (an error under -Werror) unless _DEFAULT_SOURCE is set too.
LIBNET_CFLAGS := $(shell libnet-config --defines 2>/dev/null)
PKG_CFLAGS    = $(shell pkg-config --cflags $(filter-out libnet,$(PKGS)) 2>/dev/null) $(LIBNET_CFLAGS)
PKG_LIBS      = $(shell pkg-config --libs $(filter-out libnet,$(PKGS)) 2>/dev/null) -lnet -lev -lresolv -lpthread -lm

LIBWAKE_SRC := $(sort $(wildcard libwake/*.c))
ODRSD_SRC   := $(sort $(wildcard odrsd/*.c))
ODRSCTL_SRC := $(sort $(wildcard tools/odrsctl/*.c))
UNIT_SRC    := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
MAN_PAGES   := $(sort $(wildcard man/*.[1-8]))

LIBWAKE_OBJ := $(LIBWAKE_SRC:%.c=$(B)/obj/%.o)
ODRSD_OBJ   := $(ODRSD_SRC:%.c=$(B)/obj/%.o)
ODRSCTL_OBJ := $(ODRSCTL_SRC:%.c=$(B)/obj/%.o)
SAN         := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/fuzz/%)

.PHONY: all deps install uninstall deb check unit fuzz lint lab-check demo bench clean
all: $(B)/libwake.a $(B)/libwake.so $(B)/libwake.pc $(B)/odrsd $(B)/odrsctl

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(B)/libwake.a: $(LIBWAKE_OBJ)
	rm -f $@ && ar rcs $@ $^
$(B)/libwake.so: $(LIBWAKE_OBJ)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libwake.so.0 -o $@ $^ -lnet -linih -ljansson
$(B)/libwake.pc: libwake/libwake.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@
$(B)/odrsd: $(ODRSD_OBJ) $(B)/libwake.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(ODRSD_OBJ) $(B)/libwake.a $(PKG_LIBS)
$(B)/odrsctl: $(ODRSCTL_OBJ) $(B)/libwake.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(ODRSCTL_OBJ) $(B)/libwake.a $(PKG_LIBS)
# One odrsd/virt.c job against a real libvirtd: the driver of tests/virt/test_virt.sh.
VIRT_DRIVE_OBJ := $(B)/obj/odrsd/virt.o $(B)/obj/odrsd/guest.o $(B)/obj/odrsd/snapfile.o
$(B)/virt_drive: tests/virt/virt_drive.c $(VIRT_DRIVE_OBJ) $(B)/libwake.a
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) -o $@ $< $(VIRT_DRIVE_OBJ) $(B)/libwake.a $(PKG_LIBS)
# odrsd/etcd.c against a real etcd, under ASan and UBSan: the driver of tests/lab/test_etcd.sh.
$(B)/etcd_drive: tests/etcd/etcd_drive.c $(B)/asan/odrsd/etcd.o
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $< $(B)/asan/odrsd/etcd.o $(PKG_LIBS)
# systemd's RestrictAddressFamilies= for tests/lab/unit-sandbox.sh: libc only.
$(B)/restrict_af: tests/lab/restrict_af.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $<
# The traffic generator of bench/activity.sh: libc only.
$(B)/flood: bench/flood.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $<

# Unit tests: libwake rebuilt with ASan and UBSan, one cmocka binary per file.
$(B)/asan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -MMD -MP -c $< -o $@
$(B)/tests/%: tests/unit/%.c $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# The VM lifecycle alone: odrsd/vm.c with fake effects and observers, no libev or libvirt calls.
$(B)/tests/test_vm: tests/unit/test_vm.c $(B)/asan/odrsd/vm.o $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# The state writer (odrsd/state.c) alone, with a real loop and thread; the log and control.c stubbed.
$(B)/tests/test_state: tests/unit/test_state.c $(B)/asan/odrsd/state.o $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# The /metrics text alone: odrsd/metrics_text.c, with vm.c for the state names and delay.c for its histograms.
$(B)/tests/test_metrics: tests/unit/test_metrics.c $(B)/asan/odrsd/metrics_text.o $(B)/asan/odrsd/delay.o $(B)/asan/odrsd/vm.o $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# odrsctl report alone: tools/odrsctl/report.c on fixture logs.
$(B)/tests/test_report: tests/unit/test_report.c $(B)/asan/tools/odrsctl/report.o $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itools/odrsctl $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# The snapshot-file protocol is odrsd's, tested alone: it needs no libvirt.
$(B)/tests/test_snapfile: $(B)/asan/odrsd/snapfile.o
# A domain's odrs metadata as a VM's configuration: odrsd/metadata.c alone (libxml2, no libvirt).
$(B)/tests/test_metadata: $(B)/asan/odrsd/metadata.o
# The event log's aggregation (odrsd/evlog.c) on a real loop; the log stubbed.
$(B)/tests/test_evlog: tests/unit/test_evlog.c $(B)/asan/odrsd/evlog.o $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# A VM's one-shot timers (odrsd/timers.c) on a real loop; its malloc fails on demand (wrapped).
$(B)/tests/test_timers: tests/unit/test_timers.c $(B)/asan/odrsd/timers.o
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -Wl,--wrap=malloc -o $@ $^ $(PKG_LIBS) -lcmocka
# The data path's delay histograms: odrsd/delay.c alone.
$(B)/tests/test_delay: $(B)/asan/odrsd/delay.o
# The switches' retraining (odrsd/retrain.c) on a real loop; the injection, the event log and the log stubbed.
$(B)/tests/test_retrain: tests/unit/test_retrain.c $(B)/asan/odrsd/retrain.o $(LIBWAKE_SRC:%.c=$(B)/asan/%.o)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Iodrsd $(PKG_CFLAGS) $(ALL_CFLAGS) $(SAN) -O1 -o $@ $^ $(PKG_LIBS) -lcmocka
# The capture filters' builder and their fit to the kernel: libpcap only.
$(B)/tests/test_filter: $(B)/asan/odrsd/filter.o
# Fuzzers: clang's libFuzzer over the same sources.
$(B)/fuzz/%: tests/fuzz/%.c $(LIBWAKE_SRC)
	@mkdir -p $(@D)
	$(CLANG) $(CPPFLAGS) $(PKG_CFLAGS) -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS)

deps:
	tools/deps.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(PREFIX)/include/wake $(DESTDIR)$(PREFIX)/share/man/man3 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0755 $(B)/odrsd $(DESTDIR)$(PREFIX)/sbin/odrsd
	install -m 0755 $(B)/odrsctl $(DESTDIR)$(PREFIX)/bin/odrsctl
	install -m 0644 $(B)/libwake.a $(DESTDIR)$(LIBDIR)/libwake.a
	install -m 0755 $(B)/libwake.so $(DESTDIR)$(LIBDIR)/libwake.so.0
	ln -sf libwake.so.0 $(DESTDIR)$(LIBDIR)/libwake.so
	# Made here, not in $(B): the .pc names the PREFIX of this install, whatever the build saw.
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' libwake/libwake.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/libwake.pc
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/libwake.pc
	install -m 0644 libwake/wake.h $(DESTDIR)$(PREFIX)/include/wake.h
	install -m 0644 libwake/wake/*.h $(DESTDIR)$(PREFIX)/include/wake/
	for m in $(MAN_PAGES); do s=$${m##*.}; install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/odrsd $(DESTDIR)$(PREFIX)/bin/odrsctl \
		$(DESTDIR)$(LIBDIR)/libwake.a $(DESTDIR)$(LIBDIR)/libwake.so \
		$(DESTDIR)$(LIBDIR)/libwake.so.0 $(DESTDIR)$(LIBDIR)/pkgconfig/libwake.pc \
		$(DESTDIR)$(PREFIX)/include/wake.h
	rm -rf $(DESTDIR)$(PREFIX)/include/wake
	for m in $(MAN_PAGES); do s=$${m##*.}; rm -f $(DESTDIR)$(PREFIX)/share/man/man$$s/$${m##*/}; done

# The Debian packages, built by debian/rules in a copy of the tree's files
# (tracked and new, not ignored ones): the tree's own $(B) is not touched.
deb:
	rm -rf $(B)/deb && mkdir -p $(B)/deb/odrs-$(VERSION)
	git ls-files -z --cached --others --exclude-standard | \
		tar --null -T - --ignore-failed-read -cf - | tar -xf - -C $(B)/deb/odrs-$(VERSION)
	# Without MAKEFLAGS: this make's command-line variables (B= above all,
	# which debian/rules' "make clean" would remove) must not reach the copy's.
	cd $(B)/deb/odrs-$(VERSION) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
		dpkg-buildpackage -b -us -uc >../build.log 2>&1 || \
		{ tail -n 30 ../build.log; exit 1; }
	mv $(B)/deb/*.deb $(B)/
	@ls $(B)/*_$(VERSION)_*.deb

unit: $(UNIT_BIN)
	tests/check.sh unit
fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/check.sh fuzz
lint: all
	tests/check.sh lint
lab-check: all
	tests/check.sh lab

# The README's test command: everything, on a fresh Debian 12 machine, as root.
check: deps
	$(MAKE) all
	CC=clang $(MAKE) B=$(B)/clang all
	tests/check.sh

demo: deps
	$(MAKE) all
	tests/lab/demo.sh

bench: deps $(B)/flood
	$(MAKE) all
	bench/run.sh

clean:
	rm -rf $(B)

# Not build/deb: it holds a copy of the tree, and directories such as logrotate.d.
-include $(shell find $(B) -path $(B)/deb -prune -o -name '*.d' -type f -print 2>/dev/null)
