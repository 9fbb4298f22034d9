/* idt_bad_type (row 37): a present IDT entry of type 0xC (a call gate): killed "bad IDT type 12". */
#include "lguest.h"

int main(void)
{
	hcall(LHCALL_LOAD_IDT_ENTRY, 0x30, idt_entry_lo(0x30), 0x8C00);
	panic("FAIL idt_bad_type: LOAD_IDT_ENTRY accepted type 12");
}
