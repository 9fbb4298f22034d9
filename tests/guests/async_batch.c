/* async_batch (spec 3.2): fill the whole ring (64 LOAD_IDT_ENTRY calls), so that a 65th call is
 * made directly (its slot is still pending) -- which first drains the ring.  Then every slot
 * is done and every entry works: `int $n` reaches its handler for all 65 vectors. */
#define GUEST "async_batch"
#include "check.h"

#define FIRST 0x40
#define COUNT (LHCALL_RING_SIZE + 1)
static volatile uint32_t entered[COUNT];

static void handler(struct trap_frame *frame)
{
	entered[frame->vector - FIRST]++;
}

/* `int $n` needs n in the instruction: a table of 16-byte `int $n; ret` stubs. */
extern char int_stubs[];
__asm__(".pushsection .text\n"
	".p2align 4\n"
	"int_stubs:\n"
	"n = " "0x40" "\n"
	".rept 65\n"
	".p2align 4\n"
	"int $n\n"
	"ret\n"
	"n = n + 1\n"
	".endr\n"
	".popsection\n");

int main(void)
{
	for (unsigned int i = 0; i < COUNT; i++) {
		set_trap_function(FIRST + i, handler);
		async_hcall(LHCALL_LOAD_IDT_ENTRY, FIRST + i, idt_entry_lo(FIRST + i),
			    idt_entry_hi(FIRST + i, IDT_TYPE_TRAP_GATE, 1));
		if (i == LHCALL_RING_SIZE - 1)
			for (unsigned int j = 0; j < LHCALL_RING_SIZE; j++)
				CHECK(lguest_data.hcall_status[j] == 0,
				      "slot %u not pending with the ring full", j);
	}
	for (unsigned int i = 0; i < LHCALL_RING_SIZE; i++)
		CHECK(lguest_data.hcall_status[i] == HCALL_STATUS_DONE,
		      "slot %u status %#x after the direct call", i, lguest_data.hcall_status[i]);
	for (unsigned int i = 0; i < COUNT; i++) {
		((void (*)(void))(int_stubs + 16 * i))();
		CHECK(entered[i] == 1, "int $%#x entered its handler %u times", FIRST + i,
		      entered[i]);
	}
	pass();
	return 0;
}
