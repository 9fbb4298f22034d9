/* ud_unhandled (row 40): ud2 at EIP 0x100123 (through the launcher's identity mapping) with no
 * IDT entry for #UD: killed "unhandled trap 6 at 0x100123 (0x0)". */
#include "lguest.h"

int main(void)
{
	/* 0x100123 is inside our own text (loaded at 0x100000): overwrite it with ud2 there. */
	*(volatile uint16_t *)__va(0x100123) = 0x0B0F;
	((void (*)(void))0x100123)();
	panic("FAIL ud_unhandled: ud2 did not kill");
}
