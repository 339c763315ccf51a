/*
 * Cluster mode ([cluster] backend = etcd): the registry of VMs, node load,
 * the accept role and wake claims, all in etcd (cluster.c), and the pacing
 * of the frames that teach the switches where sleeping MACs live (retrain.c).
 * With backend = none nothing here runs and this node always accepts.
 */
#ifndef ODRSD_CLUSTER_H
#define ODRSD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct odrsd;
struct vm;

int cluster_start(struct odrsd *d);
void cluster_stop(struct odrsd *d);
bool cluster_on(const struct odrsd *d);
/* The last exchange with etcd worked (always true without a cluster). */
bool cluster_store_ok(const struct odrsd *d);
/* etcd was read once since start (always true without a cluster). */
bool cluster_registry_read(const struct odrsd *d);
/* Our lease may have run out (lease_ttl since the last acknowledged renewal): acting for nobody else. */
bool cluster_fenced(const struct odrsd *d);
/* node (not this one) has no live key in etcd, as far as this node follows the store. */
bool cluster_node_lost(const struct odrsd *d, const char *node);
/* vm is running, being restored or dozing, says the registry, on a lost node. */
bool vm_node_lost(const struct odrsd *d, const struct vm *vm);
/* The accept-role holder as this node knows it ("" when none or fenced), and its term. */
const char *cluster_accept_holder(const struct odrsd *d, int64_t *term);

/*
 * Claim the wake of a hibernated VM in etcd for the least-loaded node, of a
 * dozing one for its own node. 0 or -errno, why in err.
 */
int cluster_claim(struct odrsd *d, struct vm *vm, char *err, size_t errlen);
/* Tell the registry what this node just did with vm (its state, node, size). */
void cluster_publish(struct odrsd *d, struct vm *vm);
/* The accept node passes vm's held SYNs to the node that restores it. */
void cluster_pass_syns(struct odrsd *d, struct vm *vm);
/* Propose the registry's last word on vm to vm_on_registry(); false when it has none. */
bool cluster_adopt(struct odrsd *d, struct vm *vm);
/* Hand the accept role to node; 0 once etcd took it, else -errno (why in err). */
int cluster_accept_move(struct odrsd *d, const char *node, char *err, size_t errlen);

/* retrain.c: frames with each sleeping VM's MAC as source, rate-limited. */
void retrain_init(struct odrsd *d);
/* Every sleeping VM now (and again after retrain_delay); then every retrain_refresh. */
void retrain_all(struct odrsd *d);
/* One VM that just went to sleep: now and after retrain_delay. */
void retrain_vm(struct odrsd *d, struct vm *vm);
/* The accept role is gone: nothing more to send. */
void retrain_stop(struct odrsd *d);

#endif
