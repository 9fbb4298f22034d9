/* irq_missing_gate (spec 5.1 step 6): when the lowest pending irq has no IDT entry it stays
 * pending and no other irq is tried: irq 2 waits behind irq 1 until irq 1 gets its gate.
 * Driven by tests/test_guest_irqs.py, which raises irqs 1 and 2 when it reads "raise 1 2". */
#define GUEST "irq_missing_gate"
#include "check.h"

static volatile uint32_t order[4], count;

static void device_irq(struct trap_frame *frame)
{
	if (count < ARRAY_SIZE(order))
		order[count] = frame->vector - FIRST_EXTERNAL_VECTOR;
	count++;
}

int main(void)
{
	set_trap_handler(FIRST_EXTERNAL_VECTOR + 2, device_irq, IDT_TYPE_INTERRUPT_GATE, 1);
	irq_unmask(1);
	irq_unmask(2);
	irq_disable();
	early_puts("raise 1 2\n");
	irq_enable();
	run_with_exits();
	CHECK(count == 0, "irq %u was delivered while irq 1 had no gate", order[0]);
	set_trap_handler(FIRST_EXTERNAL_VECTOR + 1, device_irq, IDT_TYPE_INTERRUPT_GATE, 1);
	for (int exits = 0; count < 2 && exits < 1000; exits++)
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(count == 2 && order[0] == 1 && order[1] == 2,
	      "after the gate: %u interrupts, order %u %u", count, order[0], order[1]);
	pass();
	return 0;
}
