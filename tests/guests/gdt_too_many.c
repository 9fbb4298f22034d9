/* gdt_too_many (row 39): LOAD_GDT of 33 entries: killed "too many gdt entries 33". */
#include "lguest.h"

static uint32_t gdt[33][2];

int main(void)
{
	hcall(LHCALL_LOAD_GDT, __pa(gdt), 33, 0);
	panic("FAIL gdt_too_many: LOAD_GDT accepted 33 entries");
}
