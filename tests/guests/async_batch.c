/* async_batch (spec 3.2): the async ring runs in order, before the synchronous call.  Fill the
 * whole ring with 64 LOAD_IDT_ENTRY calls, each pointing vector 3 at a different entry stub
 * (the stub tells the handler which one it was); the 65th call finds its slot still pending,
 * so it is made directly -- and the Host drains the ring first.  So int3 must land in the stub
 * of the 65th call, and every slot must be done.  Then one more queued call, drained by
 * FLUSH_ASYNC, moves vector 3 again. */
#define GUEST "async_batch"
#include "check.h"

#define FIRST_STUB 0x40
#define CALLS (LHCALL_RING_SIZE + 1)
static volatile uint32_t last_stub, traps;

static void breakpoint(struct trap_frame *frame)
{
	traps++;
	last_stub = frame->vector;
}

static void point_int3_at(unsigned int stub)
{
	async_hcall(LHCALL_LOAD_IDT_ENTRY, 3, idt_entry_lo(stub),
		    idt_entry_hi(stub, IDT_TYPE_TRAP_GATE, 1));
}

int main(void)
{
	for (unsigned int i = 0; i <= CALLS; i++)
		set_trap_function(FIRST_STUB + i, breakpoint);
	for (unsigned int i = 0; i < LHCALL_RING_SIZE; i++)
		point_int3_at(FIRST_STUB + i);
	for (unsigned int i = 0; i < LHCALL_RING_SIZE; i++)
		CHECK(lguest_data.hcall_status[i] == 0, "slot %u not pending with the ring full (%#x)",
		      i, lguest_data.hcall_status[i]);
	point_int3_at(FIRST_STUB + LHCALL_RING_SIZE); /* ring full: made directly */
	for (unsigned int i = 0; i < LHCALL_RING_SIZE; i++)
		CHECK(lguest_data.hcall_status[i] == HCALL_STATUS_DONE,
		      "slot %u status %#x after the direct call", i, lguest_data.hcall_status[i]);
	__asm__ __volatile__("int3");
	CHECK(traps == 1, "%u breakpoint traps, want 1", traps);
	CHECK(last_stub == FIRST_STUB + LHCALL_RING_SIZE,
	      "int3 entered stub %#x: the calls ran out of order (want %#x)", last_stub,
	      FIRST_STUB + LHCALL_RING_SIZE);

	point_int3_at(FIRST_STUB + CALLS);
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	__asm__ __volatile__("int3");
	CHECK(last_stub == FIRST_STUB + CALLS, "FLUSH_ASYNC did not drain the ring (stub %#x)",
	      last_stub);
	pass();
	return 0;
}
