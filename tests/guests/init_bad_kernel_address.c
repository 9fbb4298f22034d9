/* init_bad_kernel_address (row 30): kernel_address 0xFFC00000 (PDE 1023 is the Host's):
 * killed "bad kernel address 0xffc00000". */
#include "lguest.h"

void rt_pre_init(void)
{
	PHYS_PTR(lguest_data)->kernel_address = SWITCHER_ADDR;
}

int main(void)
{
	panic("FAIL init_bad_kernel_address: INIT accepted kernel_address 0xffc00000");
}
