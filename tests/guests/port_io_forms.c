/* port_io_forms (spec 5.2 #GP): every in/out form the Host emulates.  OUT has no effect; IN
 * with an odd opcode (word/dword) sets EAX to 0xFFFFFFFF; IN with an even opcode (byte) ORs
 * 0xFFFF into EAX, or 0xFFFF0000 with a 0x66 prefix.  Each instruction is skipped exactly. */
#define GUEST "port_io_forms"
#include "check.h"

#define IN_CASE(insn, start, want)                                                                 \
	do {                                                                                       \
		uint32_t eax = (start);                                                            \
		__asm__ __volatile__(insn : "+a"(eax) : "d"(0x3F8));                               \
		CHECK(eax == (want), "%s from %#x gave %#x, want %#x", insn, (uint32_t)(start),   \
		      eax, (uint32_t)(want));                                                      \
	} while (0)

int main(void)
{
	IN_CASE("inb $0x60, %%al", 0x12340000, 0x1234FFFF);            /* E4 */
	IN_CASE("inl $0x60, %%eax", 0x12345678, 0xFFFFFFFF);           /* E5 */
	IN_CASE("inw $0x60, %%ax", 0x12345678, 0xFFFFFFFF);            /* 66 E5 */
	IN_CASE("inb %%dx, %%al", 0x00005678, 0x0000FFFF);             /* EC */
	IN_CASE("inl %%dx, %%eax", 0, 0xFFFFFFFF);                     /* ED */
	IN_CASE("inw %%dx, %%ax", 0, 0xFFFFFFFF);                      /* 66 ED */
	IN_CASE(".byte 0x66, 0xE4, 0x60", 0x00005678, 0xFFFF5678);     /* 66 E4 */
	IN_CASE(".byte 0x66, 0xEC", 0x00001234, 0xFFFF1234);           /* 66 EC */
	IN_CASE("outb %%al, $0x80", 0xAABBCCDD, 0xAABBCCDD);           /* E6 */
	IN_CASE("outl %%eax, $0x80", 0xAABBCCDD, 0xAABBCCDD);          /* E7 */
	IN_CASE("outb %%al, %%dx", 0x01020304, 0x01020304);            /* EE */
	IN_CASE("outw %%ax, %%dx", 0x01020304, 0x01020304);            /* 66 EF */
	pass();
	return 0;
}
