/* idt_ignored (row 38): LOAD_IDT_ENTRY for 2, 8, 15 and 0x1F is silently ignored, even with a
 * bad type: the guest lives on, and with a "handler" at 0x1F hypercalls still reach the Host. */
#define GUEST "idt_ignored"
#include "check.h"

static volatile uint32_t entered;

static void handler(struct trap_frame *frame)
{
	(void)frame;
	entered++;
}

int main(void)
{
	static const unsigned int vectors[] = {2, 8, 15, LGUEST_TRAP_ENTRY};

	for (unsigned int i = 0; i < ARRAY_SIZE(vectors); i++) {
		set_trap_handler(vectors[i], handler, IDT_TYPE_TRAP_GATE, 1);
		hcall(LHCALL_LOAD_IDT_ENTRY, vectors[i], idt_entry_lo(vectors[i]), 0x8C00);
	}
	hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	CHECK(entered == 0, "a hypercall entered the guest's 0x1f handler");
	pass();
	return 0;
}
