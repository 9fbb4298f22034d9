/* init_bad_syscall_vec (row 29): lguest_data.syscall_vec is 0x81: killed "bad syscall vector". */
#include "lguest.h"

void rt_pre_init(void)
{
	PHYS_PTR(lguest_data)->syscall_vec = 0x81;
}

int main(void)
{
	panic("FAIL init_bad_syscall_vec: INIT accepted syscall_vec 0x81");
}
