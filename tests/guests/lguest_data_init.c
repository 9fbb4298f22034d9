/* lguest_data_init (spec 3.1): after LGUEST_INIT the Host has written reserve_mem (4 MB),
 * tsc_khz (0: don't use the TSC), pgdir (the launcher's page directory: the page below the top
 * of RAM without an initrd) and the wall-clock time. */
#define GUEST "lguest_data_init"
#include "check.h"

#define YEAR_2020 1577836800

int main(void)
{
	CHECK(lguest_data.reserve_mem == HOST_RESERVED_MEM, "reserve_mem %#x",
	      lguest_data.reserve_mem);
	CHECK(lguest_data.tsc_khz == 0, "tsc_khz %u", lguest_data.tsc_khz);
	CHECK(lguest_data.pgdir == guest_mem_size() - PAGE_SIZE, "pgdir %#x, want %#x",
	      lguest_data.pgdir, guest_mem_size() - PAGE_SIZE);
	CHECK(lguest_data.time.tv_sec > YEAR_2020, "time %d.%09d is not the wall clock",
	      lguest_data.time.tv_sec, lguest_data.time.tv_nsec);
	CHECK(lguest_data.time.tv_nsec >= 0 && lguest_data.time.tv_nsec < 1000000000,
	      "time nanoseconds %d", lguest_data.time.tv_nsec);
	pass();
	return 0;
}
