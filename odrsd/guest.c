/*
 * Commands inside a guest, from a virt worker thread: through
 * qemu-guest-agent (libvirt's agent channel: no credentials, no network)
 * or through ssh, as the paper did. Both run `/bin/sh -c CMD` and collect
 * what it prints, within a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <resolv.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "guest.h"

#define OUTPUT_MAX (256 * 1024)

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One agent command; the reply's "return" member, or NULL with err set. */
static json_t *agent_call(virDomainPtr dom, json_t *cmd, unsigned timeout_ms, char *err, size_t errlen)
{
	char *text = json_dumps(cmd, JSON_COMPACT), *reply;
	json_t *o, *ret;
	int secs = (int)((timeout_ms + 999) / 1000);

	json_decref(cmd);
	if (!text) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	reply = virDomainQemuAgentCommand(dom, text, secs, 0);
	free(text);
	if (!reply) {
		snprintf(err, errlen, "guest agent: %s", virGetLastErrorMessage());
		return NULL;
	}
	o = json_loads(reply, 0, NULL);
	free(reply);
	ret = json_incref(json_object_get(o, "return"));
	json_decref(o);
	if (!ret)
		snprintf(err, errlen, "guest agent: unexpected reply");
	return ret;
}

int guest_agent_exec(virDomainPtr dom, const char *cmd, unsigned timeout_ms, char **out, size_t *outlen,
		     char *err, size_t errlen)
{
	uint64_t deadline = mono_ms() + timeout_ms;
	json_t *r, *status = NULL;
	json_int_t pid;
	const char *b64;
	size_t cap;
	int n;

	r = agent_call(dom,
		       json_pack("{s:s, s:{s:s, s:[s, s], s:b}}", "execute", "guest-exec", "arguments",
				 "path", "/bin/sh", "arg", "-c", cmd, "capture-output", 1),
		       timeout_ms, err, errlen);
	if (!r)
		return -EIO;
	pid = json_integer_value(json_object_get(r, "pid"));
	json_decref(r);
	for (;;) {
		uint64_t now = mono_ms();
		if (now >= deadline) {
			snprintf(err, errlen, "guest command did not finish within %u ms", timeout_ms);
			return -ETIMEDOUT;
		}
		status = agent_call(
			dom,
			json_pack("{s:s, s:{s:I}}", "execute", "guest-exec-status", "arguments", "pid", pid),
			(unsigned)(deadline - now), err, errlen);
		if (!status)
			return -EIO;
		if (json_is_true(json_object_get(status, "exited")))
			break;
		json_decref(status);
		usleep(20 * 1000);
	}
	b64 = json_string_value(json_object_get(status, "out-data"));
	cap = b64 ? strlen(b64) / 4 * 3 + 4 : 1;
	if (!(*out = malloc(cap))) {
		json_decref(status);
		return -ENOMEM;
	}
	n = b64 ? b64_pton(b64, (unsigned char *)*out, cap) : 0;
	json_decref(status);
	if (n < 0) {
		free(*out);
		*out = NULL;
		snprintf(err, errlen, "guest agent: output is not base64");
		return -EIO;
	}
	*outlen = (size_t)n;
	return 0;
}

int guest_ssh_exec(uint32_t ip, const char *cmd, unsigned timeout_ms, char **out, size_t *outlen, char *err,
		   size_t errlen)
{
	char host[INET_ADDRSTRLEN + 8] = "root@", timeout[32];
	char *argv[] = { "ssh", "-n",	     "-o", "BatchMode=yes",
			 "-o",	timeout,     "-o", "StrictHostKeyChecking=accept-new",
			 host,	(char *)cmd, NULL };
	uint64_t deadline = mono_ms() + timeout_ms;
	posix_spawn_file_actions_t fa;
	size_t len = 0, cap = 4096;
	int pipefd[2], status = 0, r = 0;
	char *buf = malloc(cap);
	pid_t pid;

	inet_ntop(AF_INET, &ip, host + 5, INET_ADDRSTRLEN);
	snprintf(timeout, sizeof(timeout), "ConnectTimeout=%u", (timeout_ms + 999) / 1000);
	if (!buf || pipe2(pipefd, O_CLOEXEC) < 0) {
		free(buf);
		snprintf(err, errlen, "ssh: %s", strerror(errno));
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
	r = -posix_spawnp(&pid, "ssh", &fa, NULL, argv, NULL);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r < 0) {
		close(pipefd[0]);
		free(buf);
		snprintf(err, errlen, "ssh: %s", strerror(-r));
		return r;
	}
	for (;;) {
		struct pollfd pfd = { pipefd[0], POLLIN, 0 };
		uint64_t now = mono_ms();
		ssize_t n;

		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) == 0) {
			kill(pid, SIGKILL);
			snprintf(err, errlen, "ssh: no answer within %u ms", timeout_ms);
			r = -ETIMEDOUT;
			break;
		}
		if (len + 1 >= cap) {
			char *more = cap < OUTPUT_MAX ? realloc(buf, cap * 2) : NULL;
			if (!more) {
				kill(pid, SIGKILL);
				snprintf(err, errlen, "ssh: output too large");
				r = -EMSGSIZE;
				break;
			}
			buf = more;
			cap *= 2;
		}
		if ((n = read(pipefd[0], buf + len, cap - len - 1)) <= 0)
			break;
		len += (size_t)n;
	}
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		snprintf(err, errlen, "ssh to %s failed (exit %d)", host + 5,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		r = -EIO;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	*outlen = len;
	return 0;
}
