/* irq_order (spec 1.2 LHREQ_IRQ, spec 5.1): interrupts raised by the launcher arrive on vector
 * 0x20 + irq, at most one per exit, lowest first; one raised while the guest is halted wakes
 * it at the launcher's next read.  Driven by tests/test_guest_irqs.py, which plays the
 * launcher: it raises irqs 3, 1, 2 when it reads "raise 3 1 2", and irq 5 after "halting". */
#define GUEST "irq_order"
#include "check.h"

#define FIRST_IRQ 1
#define LAST_IRQ 5
static volatile uint32_t order[8], count;

static void device_irq(struct trap_frame *frame)
{
	if (count < ARRAY_SIZE(order))
		order[count] = frame->vector - FIRST_EXTERNAL_VECTOR;
	count++;
}

int main(void)
{
	for (unsigned int irq = FIRST_IRQ; irq <= LAST_IRQ; irq++) {
		set_trap_handler(FIRST_EXTERNAL_VECTOR + irq, device_irq, IDT_TYPE_INTERRUPT_GATE, 1);
		irq_unmask(irq);
	}
	irq_disable();
	early_puts("raise 3 1 2\n");
	irq_enable();
	for (int exits = 0; count < 3 && exits < 1000; exits++)
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(count == 3, "%u interrupts after 3 were raised", count);
	CHECK(order[0] == 1 && order[1] == 2 && order[2] == 3,
	      "irqs arrived in the order %u %u %u, want 1 2 3", order[0], order[1], order[2]);

	early_puts("halting\n");
	lguest_halt();
	CHECK(count == 4 && order[3] == 5, "woke from HALT with %u interrupts (last irq %u)", count,
	      order[3]);
	CHECK(lguest_data.irq_enabled == X86_EFLAGS_IF, "irq_enabled %#x after HALT",
	      lguest_data.irq_enabled);
	pass();
	return 0;
}
