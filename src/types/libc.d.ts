/** The C library functions cluster/slots.ts declares under private names (see its cdef). */

/** `volatile double *` over a shared mapping, indexed from 0 like in C. */
declare interface DoubleArray extends CData {
    [index: number]: number;
}

/** A `struct dirent` as glibc's readdir64 returns it. */
declare interface Dirent extends CData {
    d_name: CData;
}

/** @noSelf */
declare interface SlotsLibc {
    ngx_ipc_cl_open(path: string, flags: number, mode: number): number;
    ngx_ipc_cl_close(fd: number): number;
    ngx_ipc_cl_ftruncate(fd: number, length: number): number;
    ngx_ipc_cl_lseek(fd: number, offset: number, whence: number): CData;
    ngx_ipc_cl_mmap(addr: undefined, length: number, prot: number, flags: number, fd: number, offset: number): CData;
    ngx_ipc_cl_opendir(path: string): CData | undefined;
    ngx_ipc_cl_readdir(dir: CData): Dirent | undefined;
    ngx_ipc_cl_closedir(dir: CData): number;
    ngx_ipc_cl_unlink(path: string): number;
    ngx_ipc_cl_strerror(errnum: number): CData;
}
