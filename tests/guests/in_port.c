/* in_port (row 41): `in $0x60,%al` at privilege level 1 is emulated: EAX |= 0xFFFF (the upper
 * half untouched) and EIP skips exactly its 2 bytes (a wrong skip would misdecode the mov that
 * follows, which sets ECX). */
#define GUEST "in_port"
#include "check.h"

int main(void)
{
	uint32_t eax = 0x12340000, ecx = 0;

	__asm__ __volatile__("in $0x60, %%al\n\t"
			     "movl $0x5A5A5A5A, %%ecx"
			     : "+a"(eax), "+c"(ecx));
	CHECK(eax == 0x1234FFFF, "EAX %#x after in $0x60,%%al, want 0x1234ffff", eax);
	CHECK(ecx == 0x5A5A5A5A, "the instruction after the in was not run (ECX %#x)", ecx);
	pass();
	return 0;
}
