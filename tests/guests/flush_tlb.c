/* flush_tlb (spec 6): PTEs changed in memory without SET_PTE take effect after FLUSH_TLB:
 * FLUSH_TLB(0) for user addresses (below kernel_address), FLUSH_TLB(1) for all. */
#define GUEST "flush_tlb"
#include "check.h"

#define USER_VA 0x80000000u
#define KERNEL_VA 0xE0000000u
static uint32_t user_table[1024] __attribute__((aligned(4096)));
static uint32_t kernel_table[1024] __attribute__((aligned(4096)));
static uint32_t page_a[1024] __attribute__((aligned(4096)));
static uint32_t page_b[1024] __attribute__((aligned(4096)));

int main(void)
{
	page_a[0] = 0xAAAAAAAA;
	page_b[0] = 0xBBBBBBBB;
	install_page_table(USER_VA, user_table);
	install_page_table(KERNEL_VA, kernel_table);
	set_pte(user_table, USER_VA, __pa(page_a) | PTE_PRESENT | PTE_RW);
	set_pte(kernel_table, KERNEL_VA, __pa(page_a) | PTE_PRESENT | PTE_RW);
	CHECK(read_u32(USER_VA) == 0xAAAAAAAA, "user mapping: read %#x", read_u32(USER_VA));
	CHECK(read_u32(KERNEL_VA) == 0xAAAAAAAA, "kernel mapping: read %#x", read_u32(KERNEL_VA));

	*pte_slot(user_table, USER_VA) = __pa(page_b) | PTE_PRESENT | PTE_RW;
	hcall(LHCALL_FLUSH_TLB, 0, 0, 0);
	CHECK(read_u32(USER_VA) == 0xBBBBBBBB, "FLUSH_TLB(0) left the user mapping stale (%#x)",
	      read_u32(USER_VA));

	*pte_slot(kernel_table, KERNEL_VA) = __pa(page_b) | PTE_PRESENT | PTE_RW;
	hcall(LHCALL_FLUSH_TLB, 1, 0, 0);
	CHECK(read_u32(KERNEL_VA) == 0xBBBBBBBB, "FLUSH_TLB(1) left the kernel mapping stale (%#x)",
	      read_u32(KERNEL_VA));
	pass();
	return 0;
}
