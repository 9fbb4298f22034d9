/*
 * lguest_data.c: the page of state the guest shares with the Host (spec 4), statically
 * initialised as spec 10 step 1 requires, since the Host reads some fields at LGUEST_INIT
 * before any guest C code has run: the async ring all free, the noirq window around the iret
 * tail, kernel_address PAGE_OFFSET, syscall_vec 0x80, the timer irq masked, interrupts off.
 * Also the async hypercall ring's producer side (spec 3.2).
 */
#include "lguest.h"

_Static_assert(sizeof(struct hcall_args) == HCALL_SLOT_BYTES, "hcall slot size");
_Static_assert(sizeof(struct lguest_data) == LGUEST_DATA_SIZE, "lguest_data size");
_Static_assert(offsetof(struct lguest_data, irq_enabled) == LD_IRQ_ENABLED, "irq_enabled");
_Static_assert(offsetof(struct lguest_data, blocked_interrupts) == LD_BLOCKED_INTERRUPTS,
	       "blocked_interrupts");
_Static_assert(offsetof(struct lguest_data, cr2) == LD_CR2, "cr2");
_Static_assert(offsetof(struct lguest_data, time) == LD_TIME, "time");
_Static_assert(offsetof(struct lguest_data, hcall_status) == LD_HCALL_STATUS, "hcall_status");
_Static_assert(offsetof(struct lguest_data, hcalls) == LD_HCALLS, "hcalls");
_Static_assert(offsetof(struct lguest_data, reserve_mem) == LD_RESERVE_MEM, "reserve_mem");
_Static_assert(offsetof(struct lguest_data, tsc_khz) == LD_TSC_KHZ, "tsc_khz");
_Static_assert(offsetof(struct lguest_data, pgdir) == LD_PGDIR, "pgdir");
_Static_assert(offsetof(struct lguest_data, noirq_start) == LD_NOIRQ_START, "noirq_start");
_Static_assert(offsetof(struct lguest_data, noirq_end) == LD_NOIRQ_END, "noirq_end");
_Static_assert(offsetof(struct lguest_data, kernel_address) == LD_KERNEL_ADDRESS, "kernel_address");
_Static_assert(offsetof(struct lguest_data, syscall_vec) == LD_SYSCALL_VEC, "syscall_vec");


struct lguest_data lguest_data __attribute__((aligned(16))) = {
	.irq_enabled = 0,
	.blocked_interrupts = 1u << TIMER_IRQ,
	.hcall_status = {[0 ... LHCALL_RING_SIZE - 1] = HCALL_STATUS_DONE},
	.noirq_start = (uint32_t)lguest_noirq_start,
	.noirq_end = (uint32_t)lguest_noirq_end,
	.kernel_address = PAGE_OFFSET,
	.syscall_vec = SYSCALL_VECTOR,
};

void async_hcall(uint32_t call, uint32_t arg1, uint32_t arg2, uint32_t arg3)
{
	static unsigned int next_slot;
	uint32_t flags = irq_save();
	volatile uint8_t *status = &lguest_data.hcall_status[next_slot];

	if (*status != HCALL_STATUS_DONE) {
		/* The ring is full: the Host has not reached this slot yet. */
		hcall(call, arg1, arg2, arg3);
	} else {
		struct hcall_args *slot = &lguest_data.hcalls[next_slot];
		slot->arg0 = call;
		slot->arg1 = arg1;
		slot->arg2 = arg2;
		slot->arg3 = arg3;
		barrier(); /* the arguments before the status that publishes them */
		*status = 0;
		next_slot = (next_slot + 1) % LHCALL_RING_SIZE;
	}
	irq_restore(flags);
}
