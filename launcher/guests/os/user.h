/*
 * user.h: the system call interface between the user programs (user.S) and the kernel (user.c).
 * Usable from assembly.
 */
#ifndef USER_H
#define USER_H

#define USER_CODE 0x08048000       /* where the programs' page is mapped, as in an a.out */
#define USER_STACK_TOP 0x08050000  /* one page of stack below this */
#define LOAD_PHYSICAL_ADDR 0x100000 /* where the kernel is loaded: a kernel address to poke at */

#define SYS_EXIT 0  /* ebx = status: ends the program (run_user() returns it) */
#define SYS_WRITE 1 /* ebx = text, ecx = length: printed on the console */

#endif
