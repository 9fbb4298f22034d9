/* tls_load (spec 7.2): LOAD_TLS puts 3 descriptors in GDT entries 6-8, fixed up like LOAD_GDT
 * (accessed bit set, DPL 0 made DPL 1); a segment register loaded with them addresses memory
 * at their base. */
#define GUEST "tls_load"
#include "check.h"

static uint32_t tls[GDT_ENTRY_TLS_ENTRIES][2] __attribute__((aligned(8)));
static volatile uint32_t words[3] = {0x11111111, 0x22222222, 0x33333333};

static uint32_t read_through_tls(unsigned int entry)
{
	uint32_t value;

	__asm__ __volatile__("movl %1, %%gs\n\t"
			     "movl %%gs:0, %0\n\t"
			     "movl %2, %%gs"
			     : "=r"(value)
			     : "r"((GDT_ENTRY_TLS_MIN + entry) << 3 | 3), "r"(0)
			     : "memory");
	return value;
}

int main(void)
{
	for (unsigned int i = 0; i < GDT_ENTRY_TLS_ENTRIES; i++)
		make_descriptor(tls[i], (uint32_t)&words[i], 0xFFFFF, 0xF2);
	hcall(LHCALL_LOAD_TLS, __pa(tls), 0, 0);
	for (unsigned int i = 0; i < GDT_ENTRY_TLS_ENTRIES; i++) {
		uint32_t rights = access_rights((GDT_ENTRY_TLS_MIN + i) << 3 | 3);
		CHECK(rights & 0x100, "TLS entry %u: accessed bit not set (%#x)", i, rights);
		uint32_t got = read_through_tls(i);
		CHECK(got == words[i], "TLS entry %u read %#x, want %#x", i, got, words[i]);
	}
	/* Replace entry 6 with entry 8's base: the next load of %gs sees the new base. */
	make_descriptor(tls[0], (uint32_t)&words[2], 0xFFFFF, 0xF2);
	hcall(LHCALL_LOAD_TLS, __pa(tls), 0, 0);
	CHECK(read_through_tls(0) == words[2], "LOAD_TLS did not replace entry 6");

	make_descriptor(tls[2], 0, 0xFFFFF, 0x92); /* DPL 0 */
	hcall(LHCALL_LOAD_TLS, __pa(tls), 0, 0);
	uint32_t rights = access_rights((GDT_ENTRY_TLS_MIN + 2) << 3 | 1);
	CHECK((rights >> 13 & 3) == 1, "a DPL-0 TLS entry has DPL %u after LOAD_TLS, want 1",
	      rights >> 13 & 3);
	pass();
	return 0;
}
