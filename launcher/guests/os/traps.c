/*
 * traps.c: what the guest does when the Host hands it a trap or an interrupt (spec 5).
 *
 * The runtime's stubs (rt/traps.S) deliver every vector to a C handler with a trap frame and
 * return through the noirq iret path.  Here: the processor exceptions (a kernel fault is fatal
 * and names itself in the CRASH text; a user-mode fault ends the user program), the page-fault
 * handler that can map a page on demand, the timer tick re-armed with SET_CLOCKEVENT on every
 * expiry, and a counting handler for the device irqs, whose real work the event loop does.
 */
#include "os.h"

struct os_stats stats;

static const char *const exception_names[] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid TSS", "segment not present", "stack fault", "general protection",
	"page fault", "reserved", "x87 error", "alignment check", "machine check", "SIMD error",
};

static void exception(struct trap_frame *frame)
{
	const char *name = frame->vector < ARRAY_SIZE(exception_names)
				   ? exception_names[frame->vector]
				   : "exception";
	if (trap_from_user(frame))
		user_fault(frame, name);
	con_flush();
	panic("%s (trap %u) at eip %#x, error %#x", name, frame->vector, frame->eip,
	      frame->error_code);
}

/* --- Page faults ------------------------------------------------------------------------------ */

static uint32_t demand_lo, demand_hi; /* faults here get a fresh page */

static void page_fault(struct trap_frame *frame)
{
	uint32_t cr2 = *(volatile uint32_t *)&lguest_data.cr2;
	uint32_t err = frame->error_code;
	const char *cause = err & 1 ? "protection violation" : "page not present";
	const char *access = err & 2 ? "write" : "read";

	stats.page_faults++;
	if (trap_from_user(frame))
		user_fault(frame, "page fault");
	if (cr2 >= demand_lo && cr2 < demand_hi && !(err & 1)) {
		void *page = page_alloc();
		if (page) {
			kprintf("page fault: %s at cr2=%#x (%s), eip=%#x: mapping a fresh page\n",
				access, cr2, cause, frame->eip);
			map_page(cr2 & ~(PAGE_SIZE - 1), __pa(page), PTE_PRESENT | PTE_RW);
			stats.faults_recovered++;
			return; /* the iret retries the access */
		}
	}
	con_flush();
	panic("page fault: %s at cr2=%#x (%s), eip=%#x", access, cr2, cause, frame->eip);
}

uint32_t with_demand_paging(uint32_t lo, uint32_t hi, void (*fn)(void *), void *arg)
{
	uint32_t before = stats.faults_recovered;

	demand_lo = lo;
	demand_hi = hi;
	fn(arg);
	demand_lo = demand_hi = 0;
	/* Give back what the handler mapped, and the page tables it needed (the window is
	 * reserved for this: nothing else lives in its 4 MB). */
	for (uint32_t va = lo & ~(PAGE_SIZE - 1); va < hi; va += PAGE_SIZE) {
		uint32_t phys = virt_to_phys_walk(va);
		if (phys) {
			map_page(va, 0, 0);
			page_free(__va(phys & ~(PAGE_SIZE - 1)));
		}
	}
	for (uint32_t va = lo & ~0x3FFFFFu; va < hi; va += 0x400000)
		unmap_table(va);
	return stats.faults_recovered - before;
}

/* --- Interrupts ------------------------------------------------------------------------------- */

static uint32_t tick_ns;

static void timer_tick(struct trap_frame *frame)
{
	(void)frame;
	stats.irqs[TIMER_IRQ]++;
	stats.ticks++;
	lguest_set_timer(tick_ns); /* one-shot: arm the next one */
}

static void device_irq(struct trap_frame *frame)
{
	stats.irqs[(frame->vector - FIRST_EXTERNAL_VECTOR) % LGUEST_IRQS]++;
}

void enable_device_irq(unsigned irq)
{
	if (irq == TIMER_IRQ || irq >= LGUEST_IRQS)
		panic("device irq %u out of range", irq);
	set_trap_handler(FIRST_EXTERNAL_VECTOR + irq, device_irq, IDT_TYPE_INTERRUPT_GATE, 0);
	irq_unmask(irq);
}

static struct {
	int32_t sec, nsec;
} boot_time;

static void read_time(int32_t *sec, int32_t *nsec)
{
	/* The Host rewrites it at each injection: read both halves with interrupts off. */
	uint32_t flags = irq_save();
	*sec = lguest_data.time.tv_sec;
	*nsec = lguest_data.time.tv_nsec;
	irq_restore(flags);
}

uint32_t uptime_ms(void)
{
	int32_t sec, nsec;

	read_time(&sec, &nsec);
	return (uint32_t)((sec - boot_time.sec) * 1000 + (nsec - boot_time.nsec) / 1000000);
}

void timer_init(uint32_t hz)
{
	read_time(&boot_time.sec, &boot_time.nsec);
	if (hz == 0)
		return;
	tick_ns = 1000000000u / hz;
	set_trap_handler(FIRST_EXTERNAL_VECTOR + TIMER_IRQ, timer_tick, IDT_TYPE_INTERRUPT_GATE, 0);
	irq_unmask(TIMER_IRQ);
	lguest_set_timer(tick_ns);
}

void traps_init(void)
{
	for (unsigned vector = 0; vector < ARRAY_SIZE(exception_names); vector++) {
		/* The Host never lets a guest handle these (spec 5.3). */
		if (vector == 2 || vector == TRAP_DF || vector == 15)
			continue;
		set_trap_handler(vector, vector == TRAP_PF ? page_fault : exception,
				 IDT_TYPE_INTERRUPT_GATE, 0);
	}
}
