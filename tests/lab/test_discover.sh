#!/bin/bash
# discover = libvirt on one node, its configuration without any [vm] section:
#  1. a domain carrying odrs metadata (<vm ip=... wake_on="syn"/> in urn:odrs:1) is
#     managed: listed with the metadata's IP and its domain's MAC;
#  2. its metadata changed while it runs is followed at once (libvirt's event):
#     the new IP is listed, and once hibernated odrsd answers ARP for the new IP
#     only; changed back while it sleeps, a client's connection wakes it, by its
#     SYN (the metadata's wake_on = syn: the client's ARP alone wakes nothing);
#  3. metadata that does not parse, or names another VM's address, is refused
#     with the [vm] key table's message, prefixed with the domain's name, and
#     the metadata before stays in force;
#  4. a [vm] section of the same name wins (reload), a metadata change meanwhile
#     changes nothing, and once the section is gone the metadata is followed;
#  5. undefined while hibernated: no longer managed, its image kept and reported;
#     defined again: managed, hibernated, and a connection wakes it; neither
#     event counts as a change behind odrsd's back (no domain_event, no inspect);
#  6. discover is applied by a reload: off at the start (the domain is not
#     managed) and turned on before 1, turned off at the end.
# Exit 0 pass, 1 fail, 77 skip (not root).
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/odrs.sh"
set -u

MAC=52:54:00:12:00:10
meta() { # LIBVIRT_FLAGS... XML: set web1's odrs metadata
	local xml=${*: -1}
	lab_virsh n1 metadata web1 urn:odrs:1 --key odrs --set "$xml" "${@:1:$#-1}" > /dev/null ||
		fail "virsh metadata --set $xml"
}
listed() { lab_odrsctl n1 list | grep -Eq "^web1 +$1 "; }     # IP
not_listed() { ! lab_odrsctl n1 list | grep -q '^web1 '; }
arp_answered() { # IP: a reply with web1's MAC
	lab_client_exec c1 arping -c 2 -w 3 -i eth0 "$1" 2>&1 | grep -qi "$MAC"
}

trap lab_down EXIT
lab_up 1 1 || fail "lab_up"
lab_vm_start n1 web1 198.18.0.10 $MAC || fail "web1 start"
meta --live --config '<vm ip="198.18.0.10" wake_on="syn" idle_timeout="0"/>'
lab_vm_wait_ready n1 web1 || fail "guest not ready"

# ghost: a [vm] section whose address web1's metadata will try to take.
conf=$(odrs_conf n1 "discover = none" "[vm ghost]" "ip = 198.18.0.50")
lab_odrsd_start n1 "$conf" || fail "odrsd did not start"
odrs_wait_state n1 ghost error || fail "ghost not inspected"
not_listed || fail "web1 managed with discover = none: $(lab_odrsctl n1 list)"

step "1: discover turned on by a reload: the domain with metadata is managed, its MAC from the domain"
odrs_conf n1 "discover = libvirt" "[vm ghost]" "ip = 198.18.0.50" > /dev/null
out=$(lab_odrsctl n1 reload) || fail "reload: $out"
lab_wait 5 listed 198.18.0.10 || fail "web1 not discovered: $(lab_odrsctl n1 list)"
odrs_wait_state n1 web1 running || fail "web1 not seen running"
lab_odrsctl n1 list | grep -Eq "^web1 +198.18.0.10 +$MAC +running " || fail "list: $(lab_odrsctl n1 list)"
odrs_event n1 discovered web1 || fail "no discovered event"

step "2: a metadata change while it runs is followed; ARP answered for the new IP only"
meta --live --config '<vm ip="198.18.0.20" wake_on="syn" idle_timeout="0"/>'
lab_wait 3 listed 198.18.0.20 || fail "new IP not followed within 3 s: $(lab_odrsctl n1 list)"
odrs_hibernate n1 web1
arp_answered 198.18.0.20 || fail "no ARP answer for the new IP 198.18.0.20"
! arp_answered 198.18.0.10 || fail "ARP still answered for the old IP 198.18.0.10"
meta --config '<vm ip="198.18.0.10" wake_on="syn" idle_timeout="0"/>'
lab_wait 3 listed 198.18.0.10 || fail "IP changed while hibernated not followed: $(lab_odrsctl n1 list)"
[ "$(odrs_state n1 web1)" = hibernated ] || fail "web1 $(odrs_state n1 web1) after its metadata changed"
odrs_mark n1
lab_client_exec c1 ip neigh flush all
body=$(lab_client_exec c1 curl -sS --max-time 20 http://198.18.0.10/) || fail "curl failed"
[ "$body" = "hello from web1" ] || fail "body: $body"
odrs_evlog n1 | grep '"event":"wake_start"' | grep -q '"trigger":"syn"' ||
	fail "not woken by the SYN: $(odrs_evlog n1 | grep wake_start)"

step "3: metadata that does not parse or takes an address is refused; the metadata before stays"
odrs_mark n1
meta --live --config '<vm ip="198.18.0.10" idle_timeout="5x"/>'
lab_wait 5 eval "odrs_log n1 | grep -q 'web1: odrs metadata refused; its previous metadata stays'" ||
	fail "bad metadata not refused: $(odrs_log n1 | tail -5)"
odrs_log n1 | grep -q 'web1: idle_timeout: "5x": expected a duration' ||
	fail "not the [vm] key table's message: $(odrs_log n1 | tail -5)"
listed 198.18.0.10 || fail "web1 lost its metadata: $(lab_odrsctl n1 list)"
odrs_mark n1
meta --live --config '<vm ip="198.18.0.50" wake_on="syn" idle_timeout="0"/>'
lab_wait 5 eval "odrs_log n1 | grep -q 'web1: odrs metadata refused; its previous metadata stays'" ||
	fail "metadata taking [vm ghost]'s address not refused: $(odrs_log n1 | tail -5)"
odrs_log n1 | grep -q 'web1: ip 198.18.0.50 is already used by ghost' || fail "why not said: $(odrs_log n1 | tail -5)"
listed 198.18.0.10 || fail "web1 lost its metadata to a conflict: $(lab_odrsctl n1 list)"

step "4: a [vm] section wins; the metadata is followed again without it"
odrs_conf n1 "discover = libvirt" "[vm web1]" "ip = 198.18.0.30" > /dev/null
out=$(lab_odrsctl n1 reload) || fail "reload: $out"
listed 198.18.0.30 || fail "the [vm] section does not win: $(lab_odrsctl n1 list)"
odrs_mark n1
meta --live --config '<vm ip="198.18.0.40" wake_on="syn" idle_timeout="0"/>'
lab_wait 5 eval "odrs_log n1 | grep -q 'web1: odrs metadata found; its \[vm web1\] section wins'" ||
	fail "metadata change under a [vm] section: $(odrs_log n1 | tail -5)"
listed 198.18.0.30 || fail "a metadata change overrode the [vm] section: $(lab_odrsctl n1 list)"
meta --live --config '<vm ip="198.18.0.10" wake_on="syn" idle_timeout="0"/>'
odrs_conf n1 "discover = libvirt" > /dev/null
out=$(lab_odrsctl n1 reload) || fail "reload: $out"
listed 198.18.0.10 || fail "the metadata not followed once the section is gone: $(lab_odrsctl n1 list)"
odrs_wait_state n1 web1 running 10 || fail "web1 not running"

step "5: undefined while hibernated: image kept; defined again: managed and woken"
odrs_hibernate n1 web1
lab_virsh n1 dumpxml --inactive web1 > "$LAB_DIR/web1.xml" || fail "dumpxml"
odrs_mark n1
lab_virsh n1 undefine web1 > /dev/null || fail "undefine"
lab_wait 5 not_listed || fail "web1 still managed after its undefine: $(lab_odrsctl n1 list)"
[ -s "$LAB_SHARED/web1.odrs-save" ] || fail "the image of the undefined web1 is gone"
odrs_log n1 | grep -q "web1: undefined.*while hibernated.*is kept" || fail "the kept image not reported"
odrs_evlog n1 | grep '"event":"undiscovered"' | grep -q '"image":' || fail "no undiscovered event with the image"
lab_virsh n1 define "$LAB_DIR/web1.xml" > /dev/null || fail "define"
lab_wait 5 listed 198.18.0.10 || fail "web1 not managed after its define: $(lab_odrsctl n1 list)"
odrs_wait_state n1 web1 hibernated 10 || fail "web1 not hibernated after its define"
# Discovery follows them: neither the undefine nor the define is a change to inspect.
! odrs_event n1 domain_event web1 || fail "the undefine or define made odrsd inspect web1: $(odrs_evlog n1 | grep domain_event)"
body=$(lab_client_exec c1 curl -sS --max-time 20 http://198.18.0.10/) || fail "curl failed"
[ "$body" = "hello from web1" ] || fail "body: $body"

step "6: discover turned off by a reload: no longer managed"
odrs_conf n1 "discover = none" > /dev/null
out=$(lab_odrsctl n1 reload) || fail "reload: $out"
not_listed || fail "web1 still managed with discover = none: $(lab_odrsctl n1 list)"

echo "took ${SECONDS} s"
echo "PASS"
