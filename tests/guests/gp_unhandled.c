/* gp_unhandled (spec 5.2): `cli` at privilege level 1 is a #GP(0) that is not port I/O; with no
 * IDT entry: killed "unhandled trap 13 at <eip> (0x0)". */
#include "lguest.h"

int main(void)
{
	__asm__ __volatile__("cli");
	panic("FAIL gp_unhandled: cli did not kill");
}
