! gasp's Fortran interface: bind(C) declarations of the C API
! (gasp/gasp_c.h). Compile this file with your program (module files are
! specific to a compiler version, so gasp ships the source):
!   gfortran -c $(pkg-config --variable=includedir gasp)/gasp/gasp.f90
!   gfortran prog.f90 gasp.o $(pkg-config --libs gasp)
! Global memory is a type(c_ptr); c_f_pointer turns it into an array.
! Integers are default kind (c_int) unless the C API uses int64/size_t.
module gasp
  use, intrinsic :: iso_c_binding
  implicit none

  integer(c_int), parameter :: GASP_PLACE_DEFAULT = 0, GASP_PLACE_BLOCK = 1, &
       GASP_PLACE_CYCLIC = 2, GASP_PLACE_RANK = 3, GASP_PLACE_FIRST_TOUCH = 4
  integer(c_int), parameter :: GASP_SUM = 0, GASP_MIN = 1, GASP_MAX = 2

  interface
     ! 0 on success; else a status code, the reason in gasp_error_message.
     integer(c_int) function gasp_init(argc, argv) bind(C, name="gasp_init")
       import :: c_int, c_ptr
       type(c_ptr), value :: argc, argv      ! pass c_null_ptr for both
     end function
     integer(c_int) function gasp_finalize() bind(C, name="gasp_finalize")
       import :: c_int
     end function
     type(c_ptr) function gasp_error_message_c() bind(C, name="gasp_error_message")
       import :: c_ptr
     end function
     integer(c_int) function gasp_rank() bind(C, name="gasp_rank")
       import :: c_int
     end function
     integer(c_int) function gasp_size() bind(C, name="gasp_size")
       import :: c_int
     end function
     ! Collective: the same address on every rank, zero-filled.
     type(c_ptr) function gasp_coalloc(bytes) bind(C, name="gasp_coalloc")
       import :: c_ptr, c_size_t
       integer(c_size_t), value :: bytes
     end function
     type(c_ptr) function gasp_coalloc_placed(bytes, placement, arg) &
          bind(C, name="gasp_coalloc_placed")
       import :: c_ptr, c_size_t, c_int
       integer(c_size_t), value :: bytes
       integer(c_int), value :: placement, arg
     end function
     type(c_ptr) function gasp_alloc(bytes) bind(C, name="gasp_alloc")
       import :: c_ptr, c_size_t
       integer(c_size_t), value :: bytes
     end function
     subroutine gasp_free(p) bind(C, name="gasp_free")
       import :: c_ptr
       type(c_ptr), value :: p
     end subroutine
     subroutine gasp_barrier() bind(C, name="gasp_barrier")
     end subroutine
     subroutine gasp_release() bind(C, name="gasp_release")
     end subroutine
     subroutine gasp_acquire() bind(C, name="gasp_acquire")
     end subroutine
     subroutine gasp_allreduce(in, out, n, op) bind(C, name="gasp_allreduce")
       import :: c_double, c_size_t, c_int
       real(c_double), intent(in) :: in(*)
       real(c_double), intent(out) :: out(*)
       integer(c_size_t), value :: n
       integer(c_int), value :: op
     end subroutine
     type(c_ptr) function gasp_lock_new_all() bind(C, name="gasp_lock_new_all")
       import :: c_ptr
     end function
     type(c_ptr) function gasp_lock_new() bind(C, name="gasp_lock_new")
       import :: c_ptr
     end function
     subroutine gasp_lock(lock) bind(C, name="gasp_lock")
       import :: c_ptr
       type(c_ptr), value :: lock
     end subroutine
     subroutine gasp_unlock(lock) bind(C, name="gasp_unlock")
       import :: c_ptr
       type(c_ptr), value :: lock
     end subroutine
     integer(c_int64_t) function gasp_atomic_fetch_add(p, value) &
          bind(C, name="gasp_atomic_fetch_add")
       import :: c_ptr, c_int64_t
       type(c_ptr), value :: p
       integer(c_int64_t), value :: value
     end function
     integer(c_int64_t) function gasp_atomic_load(p) bind(C, name="gasp_atomic_load")
       import :: c_ptr, c_int64_t
       type(c_ptr), value :: p
     end function
     subroutine gasp_atomic_store(p, value) bind(C, name="gasp_atomic_store")
       import :: c_ptr, c_int64_t
       type(c_ptr), value :: p
       integer(c_int64_t), value :: value
     end subroutine
     ! 1 and *p = desired if *p == expected; else 0 and expected = *p.
     integer(c_int) function gasp_atomic_compare_exchange(p, expected, desired) &
          bind(C, name="gasp_atomic_compare_exchange")
       import :: c_ptr, c_int, c_int64_t
       type(c_ptr), value :: p
       integer(c_int64_t), intent(inout) :: expected
       integer(c_int64_t), value :: desired
     end function
     ! 1 if the lock was taken, 0 if someone holds it.
     integer(c_int) function gasp_trylock(lock) bind(C, name="gasp_trylock")
       import :: c_ptr, c_int
       type(c_ptr), value :: lock
     end function
     ! Status-returning allocations (0: success, out = c_null_ptr otherwise).
     integer(c_int) function gasp_try_alloc(bytes, out) bind(C, name="gasp_try_alloc")
       import :: c_ptr, c_size_t, c_int
       integer(c_size_t), value :: bytes
       type(c_ptr), intent(out) :: out
     end function
     integer(c_int) function gasp_try_coalloc(bytes, placement, arg, out) &
          bind(C, name="gasp_try_coalloc")
       import :: c_ptr, c_size_t, c_int
       integer(c_size_t), value :: bytes
       integer(c_int), value :: placement, arg
       type(c_ptr), intent(out) :: out
     end function
     integer(c_int) function gasp_is_global(p) bind(C, name="gasp_is_global")
       import :: c_ptr, c_int
       type(c_ptr), value :: p
     end function
     integer(c_int) function gasp_home_of(p) bind(C, name="gasp_home_of")
       import :: c_ptr, c_int
       type(c_ptr), value :: p
     end function
     subroutine gasp_abort_c(exit_code, message) bind(C, name="gasp_abort")
       import :: c_int, c_char
       integer(c_int), value :: exit_code
       character(kind=c_char), intent(in) :: message(*)
     end subroutine
     type(c_ptr) function gasp_version_c() bind(C, name="gasp_version")
       import :: c_ptr
     end function
  end interface

contains

  ! A C string (at most 4096 bytes read) as a Fortran string.
  function gasp_c_string(p) result(text)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: text
    character(kind=c_char), pointer :: chars(:)
    integer :: n, i
    call c_f_pointer(p, chars, [4096])
    n = 0
    do while (n < 4096)
       if (chars(n + 1) == c_null_char) exit
       n = n + 1
    end do
    allocate(character(len=n) :: text)
    do i = 1, n
       text(i:i) = chars(i)
    end do
  end function

  ! The message of the last failed call of this thread.
  function gasp_error_message() result(msg)
    character(len=:), allocatable :: msg
    msg = gasp_c_string(gasp_error_message_c())
  end function

  ! The library's version, "1.0.0".
  function gasp_version() result(v)
    character(len=:), allocatable :: v
    v = gasp_c_string(gasp_version_c())
  end function

  ! Ends the whole job with `message`; every rank exits non-zero.
  subroutine gasp_abort(exit_code, message)
    integer, intent(in) :: exit_code
    character(len=*), intent(in) :: message
    call gasp_abort_c(int(exit_code, c_int), message // c_null_char)
  end subroutine

end module gasp
