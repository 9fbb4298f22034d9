/* idt_entry_256 (row 36): LOAD_IDT_ENTRY for vector 256: killed "Setting idt entry 256". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_LOAD_IDT_ENTRY, 256, idt_entry_lo(0), idt_entry_hi(0, IDT_TYPE_TRAP_GATE, 1));
	panic("FAIL idt_entry_256: LOAD_IDT_ENTRY accepted vector 256");
}
