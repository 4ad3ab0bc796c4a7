/* The harness's fault matrix (tests/faults.py appends this to bpf_testmod.c in a scratch
 * clone; no tree the harness gates carries it).  Writing a fault's name to
 * /sys/kernel/harness_fault makes the kernel misbehave that way, from the writer's
 * context; HARNESS_PANIC_ON_LOAD makes the module panic as it loads.
 */
#include <linux/delay.h>
#include <linux/kobject.h>
#include <linux/refcount.h>
#include <linux/slab.h>

#define HARNESS_SPIN_MS 8000

static int harness_fault_index = 4;
static int harness_fault_array[4];

static noinline int harness_fault_ubsan(void)
{
	/* an index past the array, hidden from the compiler: UBSAN's bounds check */
	return harness_fault_array[READ_ONCE(harness_fault_index)];
}

static noinline int harness_fault_kasan(void)
{
	char *p = kmalloc(8, GFP_KERNEL);
	int v;

	if (!p)
		return -ENOMEM;
	v = READ_ONCE(p[READ_ONCE(harness_fault_index) + 4]);
	kfree(p);
	return v;
}

static noinline void harness_fault_refcount(void)
{
	refcount_t r = REFCOUNT_INIT(1);

	refcount_dec(&r); /* "refcount_t: decrement hit 0; leaking memory." */
}

static noinline void harness_fault_spin(bool irqs)
{
	if (irqs)
		local_irq_disable();
	preempt_disable();
	mdelay(HARNESS_SPIN_MS);
	preempt_enable();
	if (irqs)
		local_irq_enable();
}

static noinline void harness_fault_hang(void)
{
	for (;;)
		msleep(1000);
}

static noinline void harness_fault_oops(void)
{
	*(volatile int *)(unsigned long)READ_ONCE(harness_fault_array[0]) = 1;
}

static ssize_t harness_fault_store(struct kobject *kobj, struct kobj_attribute *attr,
				   const char *buf, size_t len)
{
	if (sysfs_streq(buf, "warn"))
		WARN(1, "harness fault: warn\n");
	else if (sysfs_streq(buf, "refcount"))
		harness_fault_refcount();
	else if (sysfs_streq(buf, "atomic-sleep")) {
		preempt_disable();
		msleep(1);
		preempt_enable();
	} else if (sysfs_streq(buf, "softlockup") || sysfs_streq(buf, "rcu-stall"))
		harness_fault_spin(false);
	else if (sysfs_streq(buf, "hardlockup"))
		harness_fault_spin(true);
	else if (sysfs_streq(buf, "hung-task"))
		schedule_timeout_uninterruptible(HARNESS_SPIN_MS * HZ / 1000);
	else if (sysfs_streq(buf, "ubsan"))
		harness_fault_ubsan();
	else if (sysfs_streq(buf, "kasan"))
		harness_fault_kasan();
	else if (sysfs_streq(buf, "oops"))
		harness_fault_oops();
	else if (sysfs_streq(buf, "panic"))
		panic("harness fault: panic");
	else if (sysfs_streq(buf, "hang"))
		harness_fault_hang();
	else
		return -EINVAL;
	return len;
}

static struct kobj_attribute harness_fault_attr = __ATTR(harness_fault, 0200, NULL,
							 harness_fault_store);

static int harness_fault_init(void)
{
	int ret;

#ifdef HARNESS_PANIC_ON_LOAD
	panic("harness fault: bpf_testmod panics on load");
#endif
	ret = bpf_testmod_init();
	return ret ?: sysfs_create_file(kernel_kobj, &harness_fault_attr.attr);
}

static void harness_fault_exit(void)
{
	sysfs_remove_file(kernel_kobj, &harness_fault_attr.attr);
	bpf_testmod_exit();
}

module_init(harness_fault_init);
module_exit(harness_fault_exit);
