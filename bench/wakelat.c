/*
 * wakelat SECONDS: the machine's own wake-up latency, for bench/README.md's
 * "Issue 17's spikes": one thread per CPU, pinned, sleeping 1 ms at a time
 * (absolute deadlines); prints each wake-up later than 1 ms (CLOCK_MONOTONIC
 * time, CPU, lateness) and a summary per CPU. libc only:
 *   cc -O2 -pthread -o wakelat bench/wakelat.c && ./wakelat 60
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double secs;
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}
static void *run(void *arg)
{
	long cpu = (long)arg;
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);
	double end = now() + secs, worst = 0;
	long n = 0, over = 0, over05 = 0;
	while (now() < end) {
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		double late = (now() - (next.tv_sec + next.tv_nsec / 1e9)) * 1000;
		n++;
		if (late > worst)
			worst = late;
		if (late > 0.5)
			over05++;
		if (late > 1) {
			over++;
			printf("%.6f cpu%ld late %.3f ms\n", now(), cpu, late);
		}
		if (late > 1)
			clock_gettime(CLOCK_MONOTONIC, &next); /* no catch-up burst */
	}
	printf("summary cpu%ld: %ld wake-ups, %ld over 0.5 ms, %ld over 1 ms, worst %.3f ms\n", cpu, n,
	       over05, over, worst);
	return NULL;
}
int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t t[64];
	secs = argc > 1 ? atof(argv[1]) : 10;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (long i = 0; i < ncpu; i++)
		pthread_create(&t[i], NULL, run, (void *)i);
	for (long i = 0; i < ncpu; i++)
		pthread_join(t[i], NULL);
	return 0;
}
