package synth

import "strings"

// vocabulary is the word list prompts are drawn from: common English words,
// written for this project. New keeps those that are a single token (with a
// leading space) under the chosen encoding.
var vocabulary = strings.Fields(`
the of and to in is was for that on with as by at from his her this which or had are but be
not have they one were all their there been has when who more will would no if out so said what
up its about into than them can only other new some could time these two may then do first any
like now my such over our man me even most made after also did many before must through back
years where much your way well down should because each just those people how too little state
good very make world still own see men work long get here between both life being under never day
same another know while last might us great old year off come since against go came right used
take three states himself few house use during without again place around however home small
found thought went say part once general high upon school every does got united left number
course war until always away something fact though water less public put think almost hand
enough far took head yet government system better set told nothing night end why called didn
eyes find going look asked later point knew city next program business give group toward young
days let room president side social given present several order national possible rather second
face per among form important often things looked early white case john become large big need
four within felt along children saw best church ever least power development light thing seemed
family interest want members mind country area others done turned although open god service
problem certain kind began different door thus help sense means whole matter perhaps itself york
times law human line above name example action company hands local show whether five history gave
today either act feet across taken past quite anything seen having death experience body word half
really week field car words already themselves information tell together college shall money
period held keep sure free real probably seems political cannot behind miss question air office
making brought whose special heard major problems ago became federal moment study available known
result street economic boy position reason change south board individual job society areas west
close turn love community true court force full seem am wife age policy voice control letter
research model market value data report plan level river sound music city summer winter morning
evening garden window paper story table bridge island forest mountain valley ocean village train
`)
