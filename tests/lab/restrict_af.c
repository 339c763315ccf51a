/*
 * restrict_af FAMILY[,FAMILY...] CMD [ARGS...]: run CMD with socket(2) and
 * socketpair(2) refused (EAFNOSUPPORT) for every address family not named,
 * as systemd's RestrictAddressFamilies= does, through a seccomp filter
 * that CMD and its children inherit. FAMILY is AF_UNIX, AF_INET, AF_INET6,
 * AF_NETLINK or AF_PACKET. For tests/lab/unit-sandbox.sh: the lab has no
 * systemd as PID 1. x86_64 only, as systemd's filter is per architecture.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define FAMILIES_MAX 16

static const struct {
	const char *name;
	int af;
} known[] = {
	{ "AF_UNIX", AF_UNIX },	      { "AF_INET", AF_INET },	  { "AF_INET6", AF_INET6 },
	{ "AF_NETLINK", AF_NETLINK }, { "AF_PACKET", AF_PACKET },
};

static int family(const char *name)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(known[i].name, name))
			return known[i].af;
	return -1;
}

int main(int argc, char **argv)
{
	struct sock_filter f[10 + FAMILIES_MAX];
	struct sock_fprog prog = { 0, f };
	int af[FAMILIES_MAX], n = 0, len = 0;
	char *list, *name;

	if (argc < 3) {
		fprintf(stderr, "usage: restrict_af FAMILY[,FAMILY...] CMD [ARGS...]\n");
		return 2;
	}
	list = strdup(argv[1]);
	for (name = strtok(list, ","); name; name = strtok(NULL, ",")) {
		if (n == FAMILIES_MAX || (af[n] = family(name)) < 0) {
			fprintf(stderr, "restrict_af: %s: unknown family, or too many\n", name);
			return 2;
		}
		n++;
	}
	/* Another architecture's system calls: not ours to judge. */
	f[len++] =
		(struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 2, 0);
	f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair, 1, 0);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* The family is the first argument; its low 32 bits on x86_64. */
	f[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						offsetof(struct seccomp_data, args[0]));
	for (int i = 0; i < n; i++) /* allowed: jump to the ALLOW after the ERRNO */
		f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)af[i],
							(unsigned char)(n - i), 0);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	prog.len = (unsigned short)len;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("restrict_af: seccomp");
		return 1;
	}
	execvp(argv[2], argv + 2);
	perror(argv[2]);
	return 127;
}
