/*
 * The control socket: a Unix stream socket (0660, group odrs when it
 * exists; peers other than root and that group are refused). One request
 * per line, a JSON object; the daemon answers with JSON lines, the last of
 * which has "ok". Requests and answers:
 *
 *   {"cmd":"status"}
 *     {"ok":true,"status":{"node":"n1","accept":"n1","vms":3,"sleeping":1,
 *      "uptime":123,"version":"0.1.0","counters":{"frames":..,"malformed":..,
 *      "arp_replies":..,"syns_held":..,"syns_dropped":..,"restores":..,
 *      "restore_failures":..,"saves":..,"save_failures":..}}}
 *   {"cmd":"list"}
 *     {"ok":true,"vms":[{"name":"web1","ip":"198.18.0.10","mac":"52:54:..",
 *      "state":"hibernated","node":"n1","idle_s":12,"snapshot_bytes":68000000,
 *      "last_wake_ms":312,"pinned":false}, ...]}
 *     (mac is null until known, idle_s unless running, snapshot_bytes
 *     while there is no snapshot, last_wake_ms until the first wake)
 *   {"cmd":"hibernate","vm":"web1","progress":true}
 *   {"cmd":"wake","vm":"web1","progress":true}
 *     zero or more {"progress":{"done":BYTES,"total":BYTES}} lines when
 *     "progress" was asked for, then
 *     {"ok":true,"vm":"web1","state":"hibernated","bytes":N,"ms":N}
 *     {"ok":true,"vm":"web1","state":"running","ms":N}
 *   {"cmd":"pin","vm":"web1"}, {"cmd":"unpin","vm":"web1"}  -> {"ok":true}
 *   {"cmd":"reload"}                    -> {"ok":true} | {"ok":false,"error":".."}
 *   {"cmd":"accept"}                    -> {"ok":true,"accept":"n1","term":N}
 *   {"cmd":"accept","move":"n2"}        -> {"ok":true} | {"ok":false,"error":".."}
 *
 * Any failure: {"ok":false,"error":"human readable reason"}.
 */
#ifndef ODRSD_CONTROL_H
#define ODRSD_CONTROL_H
struct odrsd;
int control_open(struct odrsd *d, const char *path);
void control_close(struct odrsd *d);
#endif
