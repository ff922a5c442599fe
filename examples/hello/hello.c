/*
 * hello: the smallest useful Xen PV guest. It writes a greeting and its
 * command line to the PV console, waits for the console daemon to read it,
 * and powers the domain off.
 *
 * It uses the console ring from start_info, not HYPERVISOR_console_io:
 * release builds of Xen drop console_io writes from unprivileged domains.
 * ABI values: xen/include/public/{xen.h,sched.h,event_channel.h,io/console.h}.
 */
#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT 12
#define VIRT_BASE 0xffffffff80000000UL
/* x86_64 PV guests see Xen's read-only machine-to-physical table here (MACH2PHYS_VIRT_START). */
#define MACHINE_TO_PHYS ((const volatile uint64_t *)0xffff800000000000UL)

#define SCHEDOP_yield 0
#define SCHEDOP_shutdown 2
#define SHUTDOWN_poweroff 0
#define EVTCHNOP_send 4

/* Bounds the wait for the console daemon so a guest without one still powers off. */
#define CONSOLE_DRAIN_YIELDS 1000000

struct start_info {
	char magic[32];
	uint64_t nr_pages;
	uint64_t shared_info;
	uint32_t flags;
	uint64_t store_mfn;
	uint32_t store_evtchn;
	struct {
		uint64_t mfn;
		uint32_t evtchn;
	} console;
	uint64_t pt_base;
	uint64_t nr_pt_frames;
	uint64_t mfn_list;
	uint64_t mod_start;
	uint64_t mod_len;
	char cmd_line[1024];
};
_Static_assert(offsetof(struct start_info, console) == 72, "start_info ABI");
_Static_assert(offsetof(struct start_info, cmd_line) == 128, "start_info ABI");

struct console_ring {
	char in[1024];
	char out[2048];
	uint32_t in_cons, in_prod;
	uint32_t out_cons, out_prod;
};

long sched_op(int cmd, void *arg);
long event_channel_op(int cmd, void *arg);
void hello_main(const struct start_info *start_info);

static volatile struct console_ring *ring;
static uint32_t ring_port;

static void console_notify(void)
{
	uint32_t port = ring_port;
	event_channel_op(EVTCHNOP_send, &port);
}

static void console_putc(char c)
{
	while (ring->out_prod - ring->out_cons >= sizeof ring->out) {
		console_notify();
		sched_op(SCHEDOP_yield, NULL);
	}
	ring->out[ring->out_prod % sizeof ring->out] = c;
	/* The byte must be in the ring before the daemon can see the new index. */
	__asm__ volatile("" ::: "memory");
	ring->out_prod++;
}

static void console_write(const char *s, size_t max_len)
{
	for (size_t i = 0; i < max_len && s[i] != '\0'; i++)
		console_putc(s[i]);
}

void hello_main(const struct start_info *start_info)
{
	/*
	 * The domain builder maps all of the guest's first pages, the console
	 * page included, at VIRT_BASE + pseudo-physical address.
	 */
	uint64_t console_pfn = MACHINE_TO_PHYS[start_info->console.mfn];
	ring = (volatile struct console_ring *)(VIRT_BASE + (console_pfn << PAGE_SHIFT));
	ring_port = start_info->console.evtchn;

	console_write("Hello from MirageUnikernelAmi (cmdline: \"", SIZE_MAX);
	console_write(start_info->cmd_line, sizeof start_info->cmd_line);
	console_write("\")\r\n", SIZE_MAX);
	console_notify();

	/* Powering off before xenconsoled has read the ring would lose the greeting. */
	for (int i = 0; i < CONSOLE_DRAIN_YIELDS && ring->out_cons != ring->out_prod; i++)
		sched_op(SCHEDOP_yield, NULL);

	unsigned int reason = SHUTDOWN_poweroff;
	sched_op(SCHEDOP_shutdown, &reason);
}
