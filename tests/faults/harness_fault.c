// SPDX-License-Identifier: GPL-2.0
/* The harness's fault matrix (tests/faults.py copies this into a scratch clone's
 * prog_tests/): each subtest of harness_fault asks bpf_testmod (with
 * tests/faults/bpf_testmod_faults.c) for one fault; harness_basic passes; harness_flaky
 * fails the first time it runs in a boot and passes after.
 */
#include <test_progs.h>

static int write_text(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | flags, 0644);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* sysctl: a knob to turn first (NULL: none), so the detector fires within the spin */
static void fault(const char *name, const char *sysctl, const char *value)
{
	if (sysctl && !ASSERT_OK(write_text(sysctl, value, 0), sysctl))
		return;
	ASSERT_OK(write_text("/sys/kernel/harness_fault", name, 0), name);
}

static const char *const plain[] = { "warn", "refcount", "atomic-sleep", "ubsan", "kasan",
				     "oops", "panic", "hang" };

void test_harness_fault(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(plain); i++)
		if (test__start_subtest(plain[i]))
			fault(plain[i], NULL, NULL);
	if (test__start_subtest("softlockup"))
		fault("softlockup", "/proc/sys/kernel/watchdog_thresh", "1");
	if (test__start_subtest("hardlockup"))
		fault("hardlockup", "/proc/sys/kernel/watchdog_thresh", "1");
	if (test__start_subtest("rcu-stall"))
		fault("rcu-stall", "/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", "3");
	if (test__start_subtest("hung-task"))
		fault("hung-task", "/proc/sys/kernel/hung_task_timeout_secs", "2");
}

void test_harness_basic(void)
{
	ASSERT_OK(access("/sys/kernel/harness_fault", W_OK), "harness_fault knob");
}

void test_harness_flaky(void)
{
	const char *seen = "/tmp/harness-flaky-ran";

	bool again;

	if (!test__start_subtest("first_run_fails"))
		return;
	again = access(seen, F_OK) == 0;
	ASSERT_OK(write_text(seen, "1", O_CREAT), seen);
	ASSERT_TRUE(again, "ran before in this boot");
}
