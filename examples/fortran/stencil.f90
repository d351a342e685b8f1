! gasp from Fortran: a 1-D heat stencil on a global array, each rank
! updating its own block and reading its neighbours' edges through plain
! array accesses; checked exactly against the same steps run serially.
! Build: gfortran -c gasp.f90; gfortran stencil.f90 gasp.o $(pkg-config --libs gasp)
program stencil
  use gasp
  implicit none
  integer, parameter :: per_rank = 512, steps = 20
  integer :: me, n, total, i, s, lo, hi, rc
  real(c_double), pointer :: cur(:), nxt(:)
  real(c_double), allocatable :: a(:), b(:)
  real(c_double) :: err(1), maxerr(1)
  type(c_ptr) :: counter_word

  if (gasp_init(c_null_ptr, c_null_ptr) /= 0) then
     print *, 'gasp_init: ', gasp_error_message()
     stop 1
  end if
  me = gasp_rank()
  n = gasp_size()
  total = per_rank * n
  call c_f_pointer(gasp_coalloc_placed(int(8 * total, c_size_t), GASP_PLACE_BLOCK, 0), cur, [total])
  call c_f_pointer(gasp_coalloc_placed(int(8 * total, c_size_t), GASP_PLACE_BLOCK, 0), nxt, [total])
  counter_word = gasp_coalloc(int(8, c_size_t))
  lo = me * per_rank + 1
  hi = lo + per_rank - 1
  do i = lo, hi
     cur(i) = initial(i)
  end do
  call gasp_barrier()
  do s = 1, steps
     do i = lo, hi
        nxt(i) = update(cur, i, total)
     end do
     call gasp_barrier()
     do i = lo, hi
        cur(i) = nxt(i)
     end do
     call gasp_barrier()
  end do
  rc = int(gasp_atomic_fetch_add(counter_word, 1_c_int64_t))

  ! The same steps serially, on private arrays.
  allocate(a(total), b(total))
  do i = 1, total
     a(i) = initial(i)
  end do
  do s = 1, steps
     do i = 1, total
        b(i) = update(a, i, total)
     end do
     a = b
  end do
  err(1) = maxval(abs(cur(lo:hi) - a(lo:hi)))
  call gasp_allreduce(err, maxerr, 1_c_size_t, GASP_MAX)
  if (me == 0) then
     if (maxerr(1) == 0 .and. gasp_atomic_load(counter_word) == n) then
        print '(a,a,a,i0,a,i0,a)', 'Fortran stencil, gasp ', gasp_version(), ': ', total, &
             ' points, ', steps, ' steps, equal to the serial run: verified'
     else
        print *, 'Fortran stencil: MISMATCH, max error ', maxerr(1)
     end if
  end if
  rc = gasp_finalize()
  if (maxerr(1) /= 0 .or. rc /= 0) stop 1

contains

  pure real(c_double) function initial(i)
    integer, intent(in) :: i
    initial = real(mod(i * 37, 101), c_double)
  end function

  ! Fixed boundaries; exact in binary (weights 1/4, 1/2, 1/4).
  pure real(c_double) function update(x, i, m)
    real(c_double), intent(in) :: x(:)
    integer, intent(in) :: i, m
    if (i == 1 .or. i == m) then
       update = x(i)
    else
       update = 0.25_c_double * x(i - 1) + 0.5_c_double * x(i) + 0.25_c_double * x(i + 1)
    end if
  end function

end program stencil
